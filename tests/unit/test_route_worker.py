"""``answer_off_loop``: the pack's route work runs on one thread, under a deadline, and always answers JSON."""
import asyncio
import json
import threading
import time

from selfcascade.nodes.routes import TOO_SLOW, answer_off_loop


def answer(compute, **limits) -> dict:
    response = asyncio.run(answer_off_loop(compute, **limits))
    assert response.status == 200
    return json.loads(response.body)


def test_work_past_its_deadline_is_answered_and_stops_at_its_next_check():
    checks_after_deadline = []

    def endless(stop_check):
        while True:
            time.sleep(0.01)
            try:
                stop_check()
            except BaseException:
                checks_after_deadline.append(time.monotonic())
                raise

    started = time.monotonic()
    assert answer(endless, time_limit_s=0.2) == {"error": TOO_SLOW}
    assert TOO_SLOW.startswith("the server could not plan these settings within 5 s (it may be busy)")
    assert time.monotonic() - started < 2.0
    deadline = time.monotonic() + 2.0
    while not checks_after_deadline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checks_after_deadline, "the abandoned work kept running"
    assert answer(lambda stop_check: {"answer": 42}) == {"answer": 42}  # the thread is free again


def test_input_errors_are_answers_and_other_failures_are_logged(caplog):
    def refuses(stop_check):
        raise ValueError("k = 2.0 is outside its limits; choose 0.01 to 1.0.")

    def fails(stop_check):
        raise KeyError("bug")

    assert answer(refuses) == {"error": "k = 2.0 is outside its limits; choose 0.01 to 1.0."}
    assert answer(fails) == {"error": "the server could not answer (KeyError); its log has the details"}
    assert "Self-Cascade: a route failed" in caplog.text


def test_all_route_work_shares_one_thread():
    threads = {answer(lambda stop_check: {"thread": threading.get_ident()})["thread"] for _ in range(3)}
    assert len(threads) == 1 and threading.get_ident() not in threads
