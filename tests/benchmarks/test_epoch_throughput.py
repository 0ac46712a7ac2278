"""benchmarks/epoch_throughput.py: the tiny run writes valid JSON and tables, no timing limits."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "epoch_throughput.py")


def _module():
    spec = importlib.util.spec_from_file_location("epoch_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_run_writes_json_markdown_and_its_results_section(tmp_path):
    out, table, results = tmp_path / "e.json", tmp_path / "e.md", tmp_path / "results.md"
    results.write_text("# Measured results\n\n## Someone else's section\n\nkept\n")
    completed = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--tiny",
            f"--out={out}",
            f"--markdown={table}",
            f"--results_md={results}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tiny"] is True and report["repeats"] == 1
    assert report["commit"]["sha"] and report["date_utc"].endswith("UTC")
    assert set(report["summary"]) == {"fashion_mnist", "jpeg_folder"}
    for data, summary in report["summary"].items():
        assert set(summary["median"]) == {"plain", "metacleaner"}
        runs = report["samples"][data]
        # The same images per step and steps for both methods.
        assert runs["plain"][0]["images"] == runs["metacleaner"][0]["images"] > 0
        for run in runs["plain"] + runs["metacleaner"]:
            for key in ("images_per_second", "cpu_ms_per_image", "peak_rss_mb", "epoch_wall_s"):
                assert math.isfinite(run[key]) and run[key] > 0, (data, key)
        ratios = summary["ratio_metacleaner_over_plain"]
        assert set(ratios) == {"throughput_cpu", "throughput_wall", "peak_memory"}
        assert all(math.isfinite(v) and v > 0 for v in ratios.values())
        assert set(summary["goals_met"]) == {"throughput_cpu", "peak_memory"}
    markdown = table.read_text()
    assert markdown.count("| plain |") == markdown.count("| metacleaner |") == 2
    assert report["commit"]["sha"] in markdown and "--tiny" in markdown
    assert markdown in completed.stdout
    text = results.read_text()
    assert text.startswith("# Measured results\n\n## Someone else's section\n\nkept\n")
    assert markdown in text and "## Epoch throughput and memory (issue 15)" in text


def test_results_section_is_replaced_not_appended_twice(tmp_path):
    module = _module()
    path = tmp_path / "results.md"
    path.write_text("# Results\n\n## Before\n\nA\n")
    module.update_results_md(str(path), "table one\n")
    path.write_text(path.read_text() + "\n## After\n\nB\n")
    module.update_results_md(str(path), "table two\n")
    text = path.read_text()
    assert text.count("<!-- epoch_throughput:start -->") == 1
    assert text.count("<!-- epoch_throughput:end -->") == 1
    assert "table two" in text and "table one" not in text
    assert text.index("## Before") < text.index("table two") < text.index("## After")


def test_ratios_are_paired_by_repeat():
    module = _module()

    def run(ips, cpu_ms, rss):
        return {
            "images_per_second": ips,
            "cpu_ms_per_image": cpu_ms,
            "epoch_wall_s": 1.0,
            "peak_rss_mb": rss,
            "train_examples": 10,
            "image_shape": [8, 8, 1],
            "images_per_step": 4,
            "steps": 2,
        }

    samples = {
        "d": {
            "plain": [run(100, 1.0, 1000), run(50, 2.0, 1000), run(80, 1.0, 1000)],
            "metacleaner": [run(90, 1.25, 1100), run(45, 2.0, 1000), run(88, 1.0, 1000)],
        }
    }
    summary = module.summarize(samples)["d"]
    ratios = summary["ratio_metacleaner_over_plain"]
    assert ratios["throughput_cpu"] == pytest.approx(1.0)  # median of 0.8, 1.0, 1.0
    assert ratios["throughput_wall"] == pytest.approx(0.9)  # median of 0.9, 0.9, 1.1
    assert ratios["peak_memory"] == pytest.approx(1.0)
    assert summary["goals_met"] == {"throughput_cpu": True, "peak_memory": True}
    assert summary["median"]["plain"]["images_per_second"] == 80
