"""Issue 9: print(stats) is a few readable lines (it was one 1,000-character
line with floats like p50=51699.307161469806) and repr(stats) stays short."""
import re

from tallyio import NumaScheduler, NumaTopology, SchedulerConfig, Task
from tallyio.stats import STR_WORKER_ROWS


class Fails(Task):
    def execute(self):
        raise ValueError("bad input 7")


def _stats_after_work(workers: int, tasks: int = 2000):
    config = SchedulerConfig(workers_per_numa_node=workers, enable_cpu_affinity=False)
    errors = []
    with NumaScheduler(config, topology=NumaTopology.uniform(1, 2),
                       on_error=lambda task, exc: errors.append(exc)) as scheduler:
        futures = [scheduler.submit(pow, 3, k) for k in range(tasks)]
        scheduler.submit_task(Fails())
        scheduler.join()
        assert [f.result() for f in futures] == [3 ** k for k in range(tasks)]
        return scheduler.stats()


def test_str_is_readable_lines_with_short_numbers():
    stats = _stats_after_work(workers=2)
    text = str(stats)
    lines = text.splitlines()
    assert len(lines) >= 8 and all(len(line) <= 120 for line in lines), text
    assert not re.search(r"\d\.\d{4,}", text), text          # no 51699.307161469806
    assert lines[0].startswith(f"SchedulerStats: {stats.metrics.tasks_processed:,} tasks processed in ")
    assert re.search(r"^  queue wait   p50 [\d.]+ (us|ms|s)  p99 ", text, re.M)
    assert "failed 1" in text and "errors       1 recent, last: ValueError('bad input 7')" in text
    worker_rows = [line for line in lines if re.match(r"^\s+\d+\s+\d+\s+-?\d+\s", line)]
    assert len(worker_rows) == 2


def test_repr_is_one_short_line():
    stats = _stats_after_work(workers=2)
    text = repr(stats)
    assert "\n" not in text and len(text) < 150, text
    assert text.startswith("<SchedulerStats 2 workers, ") and f"{stats.metrics.tasks_processed:,} processed" in text


def test_str_caps_the_worker_rows():
    stats = _stats_after_work(workers=STR_WORKER_ROWS + 4, tasks=100)
    text = str(stats)
    assert "... and 4 more workers" in text
    assert len(text.splitlines()) < STR_WORKER_ROWS + 12
