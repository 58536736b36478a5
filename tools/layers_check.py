"""The tree is the architecture: no module of src/ imports from a layer to
its right, and no two layers import each other (make lint).

    contract -> host -> rules -> plan -> stream -> bench -> adapter

`bench` (bench builds only) wraps the stream's mode and host and is reached
by the adapters through one seam. Test code (`tests.rs`, files under a
`tests/` folder, an inline `mod tests` at the end of a file) and comments
are not imports of the product and are left out."""
import re
import sys
from pathlib import Path

ORDER = ["contract", "host", "rules", "plan", "stream", "bench", "adapter"]
SRC = Path(__file__).resolve().parents[1] / "src"


def product_code(text: str) -> str:
    # An inline test module ends the product code of its file.
    cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests \{", text, re.M)
    text = text[:cut.start()] if cut else text
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def main() -> int:
    edges: dict[tuple[str, str], set[str]] = {}
    for f in sorted(SRC.rglob("*.rs")):
        parts = f.relative_to(SRC).parts
        top = parts[0].removesuffix(".rs")
        if top not in ORDER or f.name == "tests.rs" or "tests" in parts[:-1] or f.name.endswith("_tests.rs"):
            continue
        for dep in re.findall(r"crate::([a-z_]+)", product_code(f.read_text())):
            if dep != top and dep in ORDER:
                edges.setdefault((top, dep), set()).add(str(f.relative_to(SRC.parent)))
    problems = []
    for (a, b), files in sorted(edges.items()):
        if ORDER.index(b) > ORDER.index(a):
            problems.append(f"{a} imports {b}, a layer to its right: {', '.join(sorted(files))}")
    print(f"layers_check: {len(edges)} imports between layers ({' -> '.join(ORDER)}); {len(problems)} problem(s)")
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
