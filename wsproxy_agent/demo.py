"""``make demo``: the main job on an embedded default. Filled in by the enrollment issue."""

from __future__ import annotations


def main() -> None:
    print("wsproxy-agent demo: not yet - enrollment lands with the enrollment issue.")


if __name__ == "__main__":
    main()
