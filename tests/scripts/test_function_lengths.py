"""`make lint` refuses a function longer than 50 lines in the application packages."""

from __future__ import annotations

from scripts.function_lengths import long_functions, main


def _module(tmp_path, body_lines: int):
    path = tmp_path / "module.py"
    body = "\n".join(f"    x{n} = {n}" for n in range(body_lines - 1))
    path.write_text(f"import functools\n\n\n@functools.cache\ndef f():\n{body}\n")
    return path


def test_a_function_of_51_lines_is_reported_and_50_is_not(tmp_path):
    assert [
        (name, length) for _, _, name, length in long_functions([_module(tmp_path, 51)], 50)
    ] == [("f", 51)]
    assert long_functions([_module(tmp_path, 50)], 50) == []


def test_the_application_packages_pass():
    assert main([]) == 0
