from __future__ import annotations

from wsproxy_agent.status_report import problem, render


def test_each_problem_is_shown_with_the_command_that_fixes_it():
    report = {
        "role": "proxy",
        "facts": {"renewal": "due 2030-01-01 00:00:00 UTC"},
        "sections": {"last errors": []},
        "problems": [problem("The proxy daemon is not running.", "systemctl start x")],
    }
    text = render(report)
    assert "  renewal  due 2030-01-01 00:00:00 UTC" in text
    assert "last errors:\n  (none)" in text
    assert (
        "needs attention:\n  - The proxy daemon is not running.\n    fix: systemctl start x" in text
    )
    assert render({**report, "problems": []}).endswith("healthy")
