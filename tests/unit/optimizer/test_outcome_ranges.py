"""An outcomes file's numeric columns are checked row by row: a negative token count or cost,
or a quality outside 0 to 1, is refused naming its line and field. So is a second row of the
same prompt and model, and a prompt without a row for every model of the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from finops.optimizer.adapters.outcome_files import load_outcomes

HEADER = "prompt_id,task_type,model,quality,cost_usd,input_tokens,output_tokens,prompt"
GOOD = "p1,t,m,1,0.01,100,20,question"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("p2,t,m,1,0.01,100,-20,q", "line 3: output_tokens -20 is not a number of 0 or more"),
        ("p2,t,m,1,0.01,100,x,q", "line 3: output_tokens x is not a number of 0 or more"),
        ("p2,t,m,1,0.01,-1,20,q", "line 3: input_tokens -1 is not a number of 0 or more"),
    ],
)
def test_a_negative_or_unreadable_token_count_is_refused(tmp_path: Path, row, message):
    data = tmp_path / "outcomes.csv"
    data.write_text(f"{HEADER}\n{GOOD}\n{row}\n")
    with pytest.raises(ValueError) as refused:
        load_outcomes(data)
    assert str(refused.value) == message


def test_a_cost_over_an_events_bound_is_refused(tmp_path: Path):
    # two prompts at $1e308 summed to inf: --json printed Infinity, which is not JSON
    data = tmp_path / "outcomes.csv"
    data.write_text(f"{HEADER}\n{GOOD}\np2,t,m,1,1e308,100,20,q\n")
    with pytest.raises(ValueError) as refused:
        load_outcomes(data)
    assert str(refused.value) == "line 3: cost_usd 1e308 is not a number from 0 to 1,000,000"


@pytest.mark.parametrize("field", ["prompt_id", "task_type", "model"])
def test_an_empty_name_is_refused(tmp_path: Path, field: str):
    # an empty model was read as a model "": "prompt p2 has no row for model m; each prompt
    # needs a row per model: , m"
    row = dict(zip(HEADER.split(","), "p2,t,m,1,0.01,100,20,q".split(","), strict=True))
    row[field] = ""
    data = tmp_path / "outcomes.csv"
    data.write_text(f"{HEADER}\n{GOOD}\n{','.join(row.values())}\n")
    with pytest.raises(ValueError) as refused:
        load_outcomes(data)
    assert str(refused.value) == f"line 3: {field} is empty"


def test_a_byte_order_mark_is_skipped(tmp_path: Path):
    # a CSV saved by Excel starts with one: it was "not an outcomes CSV: it has no prompt_id
    # column"
    data = tmp_path / "outcomes.csv"
    data.write_bytes(f"\ufeff{HEADER}\n{GOOD}\n".encode())
    assert [p.prompt_id for p in load_outcomes(data).prompts] == ["p1"]


def test_zero_and_empty_token_counts_are_read(tmp_path: Path):
    data = tmp_path / "outcomes.csv"
    data.write_text(f"{HEADER}\n{GOOD}\np2,t,m,0,0,0,,q\n")
    assert len(load_outcomes(data).prompts) == 2


def test_a_second_row_of_the_same_prompt_and_model_is_refused(tmp_path: Path):
    data = tmp_path / "outcomes.csv"
    data.write_text(f"{HEADER}\n{GOOD}\np2,t,m,1,0.01,1,1,q\np1,t,m,0,0.01,100,20,again\n")
    with pytest.raises(ValueError) as refused:
        load_outcomes(data)
    assert str(refused.value) == (
        "line 4: prompt p1 has a second row for model m (the first is line 2); give one row per"
        " prompt and model"
    )


def test_a_prompt_without_a_row_for_every_model_is_refused(tmp_path: Path):
    # the walkthrough's file: the oracle (0.6) came out worse than the best model (0.7)
    data = tmp_path / "outcomes.csv"
    data.write_text("prompt_id,task_type,model,quality,cost_usd\np1,t,a,0.5,1\np2,t,b,0.7,1\n")
    with pytest.raises(ValueError) as refused:
        load_outcomes(data)
    assert str(refused.value) == (
        "line 2: prompt p1 has no row for model b; each prompt needs a row per model: a, b"
    )


def test_every_prompt_with_every_model_once_is_read(tmp_path: Path):
    data = tmp_path / "outcomes.csv"
    data.write_text(
        "prompt_id,task_type,model,quality,cost_usd\np1,t,a,0.5,1\np2,t,b,0.7,1\n"
        "p2,t,a,0.6,1\np1,t,b,0.4,1\n"
    )
    outcomes = load_outcomes(data)
    assert [p.prompt_id for p in outcomes.prompts] == ["p1", "p2"]
    assert outcomes.models == ["a", "b"]
