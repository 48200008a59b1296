"""What `finops up` says when a component exits during start-up: the last error it logged."""

from __future__ import annotations

from finops.cli.stack.process import last_error


def test_the_last_error_line_of_a_json_log_is_named(tmp_path):
    log = tmp_path / "healer.log"
    log.write_text(
        '{"level": "ERROR", "message": "an older failure"}\n'
        '{"level": "ERROR", "message": "Application startup failed. Exiting."}\n'
        '{"level": "INFO", "message": "Finished server process"}\n'
        "not json at all\n"
    )
    assert last_error(log) == "Application startup failed. Exiting."


def test_no_log_or_no_error_says_nothing(tmp_path):
    quiet = tmp_path / "auth.log"
    quiet.write_text('{"level": "INFO", "message": "Started server process"}\n')
    assert last_error(quiet) is None
    assert last_error(tmp_path / "missing.log") is None
    assert last_error(None) is None


def test_a_service_that_refused_its_settings_is_named_by_its_error_line(tmp_path):
    # finops.common.runner.serve's one line on stderr, which the stack puts in the log
    log = tmp_path / "ingest.log"
    log.write_text(
        '{"level": "ERROR", "message": "an older failure"}\n'
        "error: FINOPS_KAFKA_BOOTSTRAP=kafka:abc: should be a comma-separated list of HOST:PORT\n"
    )
    assert last_error(log) == (
        "FINOPS_KAFKA_BOOTSTRAP=kafka:abc: should be a comma-separated list of HOST:PORT"
    )
