"""An outcomes file's numeric columns are checked row by row: a negative token count or cost,
or a quality outside 0 to 1, is refused naming its line and field."""

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


def test_zero_and_empty_token_counts_are_read(tmp_path: Path):
    data = tmp_path / "outcomes.csv"
    data.write_text(f"{HEADER}\n{GOOD}\np2,t,m,0,0,0,,q\n")
    assert len(load_outcomes(data).prompts) == 2
