"""Python source for generated tools: input normalisation, realistic errors, varied code styles."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ftrl_gym.generation.documents import ATTRIBUTE_LABELS, ToolDoc
from ftrl_gym.generation.world import CONVERSIONS, RELATIONS, UNIT_NAMES, WEEKDAYS

REVERSE_FACTORS: dict[tuple[str, str], float] = {
    ("ft", "m"): 0.3048,
    ("mi", "km"): 1.609344,
    ("in", "cm"): 2.54,
    ("lb", "kg"): 0.453592,
}
UNIT_ALIASES: dict[str, str] = {
    "meters": "m",
    "metres": "m",
    "meter": "m",
    "feet": "ft",
    "foot": "ft",
    "kilometers": "km",
    "kilometres": "km",
    "miles": "mi",
    "mile": "mi",
    "centimeters": "cm",
    "centimetres": "cm",
    "inches": "in",
    "inch": "in",
    "kilograms": "kg",
    "kilogram": "kg",
    "pounds": "lb",
    "lbs": "lb",
    "celsius": "c",
    "fahrenheit": "f",
    "°c": "c",
    "°f": "f",
}


def row_key(name: str, variant: int) -> str:
    """Return a table key exactly as the generated code normalises a name of that variant."""
    if variant == 2:
        return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()
    return " ".join(name.split()).casefold()


def _signature(doc: ToolDoc) -> str:
    """Return ``def name(required..., optional=default...):``."""
    parts = [p.name for p in doc.params if p.required]
    parts += [f"{p.name}={p.default!r}" for p in doc.params if not p.required]
    return f"def {doc.name}({', '.join(parts)}):"


def _fail(doc: ToolDoc, message: str, indent: str = "        ") -> str:
    """Return the statement that reports an input error in the document's code style."""
    prefix = "f" if "{" in message else ""
    if doc.variant == 1:
        return f"{indent}raise ValueError({prefix}{message!r})"
    if doc.variant == 2:
        return f'{indent}return {{"error": {prefix}{message!r}}}'
    return f"{indent}return {prefix}{('Error: ' + message)!r}"


def _module(
    doc: ToolDoc, module_imports: list[str], body: list[str], constants: Sequence[str] = ()
) -> str:
    """Assemble a module: imports at the top (style 0/2) or inside the function (style 1)."""
    inside = doc.variant == 1
    head = [] if inside else list(module_imports)
    if not inside:
        head += [""] + list(constants) if constants else []
    lines = head + ["", ""] if head else []
    lines += [_signature(doc), f'    """{doc.description}"""']
    if inside:
        lines += [f"    {imp}" for imp in module_imports]
        lines += [f"    {c}" if c else "" for line in constants for c in line.split("\n")]
    lines += body
    return "\n".join(lines) + "\n"


def lookup_source(doc: ToolDoc, rows: list[dict[str, Any]]) -> str:
    """Write a lookup tool over a table of rows (``id``, ``name`` and one key per field)."""
    kind, subject = doc.kind or "", doc.roles["subject"]
    table = kind.upper() + "_RECORDS"
    fields = [ATTRIBUTE_LABELS[RELATIONS[op].attribute][0] for op in doc.ops]
    if doc.variant == 1:
        constants = [f"{table} = [\n" + "".join(f"    {json.dumps(r)},\n" for r in rows) + "]"]
    else:
        entries = "".join(
            f"    {json.dumps(row_key(r['name'], doc.variant))}: {json.dumps(r)},\n" for r in rows
        )
        constants = [f"{table} = {{\n{entries}}}"]
    if doc.variant == 2:
        constants.append(
            "\n\ndef normalise_name(text):\n"
            '    return re.sub(r"[^a-z0-9]+", " ", str(text).lower()).strip()'
        )
    body = (
        _find_record(doc, table, kind, subject)
        + _select_field(doc, fields)
        + _shape_value(doc, kind)
    )
    imports = ["import re", "import json"] if doc.variant else ["import json"]
    return _module(doc, imports, body, constants)


def _find_record(doc: ToolDoc, table: str, kind: str, subject: str) -> list[str]:
    """Lines that find the subject's record by name (or id when the tool accepts ids)."""
    ids = doc.options.get("accepts_ids", False)
    if doc.variant == 1:
        lines = [
            f'    wanted = re.sub(r"\\s+", " ", str({subject})).strip().lower()',
            "    record = None",
            f"    for row in {table}:",
            '        if row["name"].lower() == wanted'
            + (' or str(row["id"]) == wanted:' if ids else ":"),
            "            record = row",
            "            break",
        ]
    else:
        norm = (
            "normalise_name(" + subject + ")"
            if doc.variant == 2
            else f'" ".join(str({subject}).split()).casefold()'
        )
        lines = [f"    key = {norm}", f"    record = {table}.get(key)"]
        if ids:
            lines += [
                "    if record is None and key.isdigit():",
                f'        record = next((r for r in {table}.values() if r["id"] == int(key)), None)',
            ]
    lines += [
        "    if record is None:",
        _fail(doc, f"unknown {kind} '{{{subject}}}'; check the spelling"),
    ]
    return lines


def _select_field(doc: ToolDoc, fields: list[str]) -> list[str]:
    """Lines that pick the requested field (a broad tool) or the tool's only field."""
    if len(fields) == 1:
        return [f'    wanted_field = "{fields[0]}"']
    selector = doc.roles["selector"]
    return [
        f'    wanted_field = str({selector}).strip().lower().replace(" ", "_").replace("-", "_")',
        f"    if wanted_field not in {tuple(fields)!r}:",
        _fail(doc, f"unknown field '{{{selector}}}'; expected one of {', '.join(fields)}"),
    ]


def _shape_value(doc: ToolDoc, kind: str) -> list[str]:
    """Lines that apply unit, format, verbosity and structure options, then return."""
    lines = ["    value = record[wanted_field]"]
    opts = doc.options
    if "unit" in opts:
        base = RELATIONS[doc.ops[0]].unit or ""
        alt = next(b for (a, b) in list(CONVERSIONS) + [("c", "f")] if a == base)
        formula = "value * 9 / 5 + 32" if base == "c" else f"value * {CONVERSIONS[(base, alt)]!r}"
        names = (alt, UNIT_NAMES[alt].split()[-1].lower())
        lines += [
            f"    unit_choice = str({opts['unit']}).strip().lower()",
            f"    if unit_choice in {names!r}:",
            f"        value = round({formula}, 2)",
            f"    elif unit_choice not in {(base, UNIT_NAMES[base].split()[-1].lower())!r}:",
            _fail(doc, f"unsupported unit '{{{opts['unit']}}}'"),
        ]
    if "format" in opts:
        lines += [
            f'    if str({opts["format"]}).lower() == "grouped" and isinstance(value, (int, float)):',
            '        value = f"{value:,}"',
        ]
    if "verbose" in opts:
        lines += [
            f"    if {opts['verbose']}:",
            "        return f\"The {wanted_field.replace('_', ' ')} of {record['name']} is {value}.\"",
        ]
    if opts.get("structured"):
        lines += [
            f'    result = {{"{kind}": record["name"], wanted_field: value}}',
            '    if wanted_field + "_id" in record:',
            '        result[wanted_field + "_id"] = record[wanted_field + "_id"]',
            "    return result",
        ]
    else:
        lines.append("    return value")
    return lines


def _number_lines(doc: ToolDoc, param: str, var: str) -> list[str]:
    """Lines that read a number that may come as text (``"1,234.5"``), failing politely."""
    return [
        f"    if isinstance({param}, (int, float)):",
        f"        {var} = {param}",
        "    else:",
        f'        text = str({param}).replace(",", "").strip()',
        '        if not re.fullmatch(r"-?\\d+(\\.\\d+)?", text):',
        _fail(doc, f"'{{{param}}}' is not a number", "            "),
        "        " + f'{var} = float(text) if "." in text else int(text)',
    ]


def _dispatch(doc: ToolDoc, branches: dict[str, list[str]]) -> list[str]:
    """Lines that run one operation's branch: directly for a narrow tool, by name for a broad one.

    Args:
        doc: The document; a broad tool has an ``operation`` role.
        branches: Operation name → its lines, indented for a branch body (8 spaces).
    """
    if len(branches) == 1:
        return [line[4:] for line in next(iter(branches.values()))]
    lines = [f"    operation_name = str({doc.roles['operation']}).strip().lower()"]
    for i, (name, branch) in enumerate(branches.items()):
        aliases = (name,) + _MATH.get(name, ())
        test = f"in {aliases!r}" if len(aliases) > 1 else f"== {name!r}"
        lines += [f"    {'if' if i == 0 else 'elif'} operation_name {test}:"] + branch
    return lines + ["    else:", _fail(doc, "unknown operation '{operation_name}'")]


def _rounding(doc: ToolDoc) -> str:
    """The digits argument of ``round``: the precision option if the tool has one, else 2."""
    return f"int({doc.options['decimals']})" if "decimals" in doc.options else "2"


def _returns(doc: ToolDoc, op_name: str, var: str = "result") -> list[str]:
    """The return statement: a JSON object for structured tools, the bare value otherwise."""
    if doc.options.get("structured"):
        return [f'    return {{"operation": "{op_name}", "result": {var}}}']
    return [f"    return {var}"]


def convert_source(doc: ToolDoc) -> str:
    """Write a unit converter: narrow (fixed units) or broad (unit parameters and alias table)."""
    value = doc.roles["value"]
    body = _number_lines(doc, value, "amount")
    if "fixed" in doc.options:
        src, dst = doc.options["fixed"]
        formula = "amount * 9 / 5 + 32" if src == "c" else f"amount * {CONVERSIONS[(src, dst)]!r}"
        body += [f"    result = round({formula}, {_rounding(doc)})"]
        return _module(doc, ["import re"], body + _returns(doc, f"{src}->{dst}"))
    factors = {
        f"{a}->{b}": f for (a, b), f in list(CONVERSIONS.items()) + list(REVERSE_FACTORS.items())
    }
    constants = [
        f"FACTORS = {json.dumps(factors)}",
        f"UNIT_ALIASES = {json.dumps(UNIT_ALIASES, ensure_ascii=False)}",
    ]
    src_p, dst_p = doc.roles["from_unit"], doc.roles["to_unit"]
    body += [
        f"    source = str({src_p}).strip().lower()",
        f"    target = str({dst_p}).strip().lower()",
        "    source = UNIT_ALIASES.get(source, source)",
        "    target = UNIT_ALIASES.get(target, target)",
        '    if (source, target) == ("c", "f"):',
        "        result = amount * 9 / 5 + 32",
        '    elif (source, target) == ("f", "c"):',
        "        result = (amount - 32) * 5 / 9",
        "    elif source == target:",
        "        result = amount",
        '    elif source + "->" + target in FACTORS:',
        '        result = amount * FACTORS[source + "->" + target]',
        "    else:",
        _fail(doc, f"cannot convert from '{{{src_p}}}' to '{{{dst_p}}}'"),
        f"    result = round(result, {_rounding(doc)})",
    ]
    return _module(doc, ["import re"], body + _returns(doc, "convert"), constants)


_MATH = {
    "add": ("+", "plus", "sum"),
    "subtract": ("-", "minus", "difference"),
    "multiply": ("*", "times", "product"),
    "divide": ("/", "over", "ratio"),
}


def math_source(doc: ToolDoc) -> str:
    """Write an arithmetic tool: one operation, or several chosen by an operation parameter."""
    body = _number_lines(doc, doc.roles["a"], "lhs") + _number_lines(doc, doc.roles["b"], "rhs")
    ops = [op.split(".")[1] for op in doc.ops]
    exprs = {
        "add": "lhs + rhs",
        "subtract": "lhs - rhs",
        "multiply": "lhs * rhs",
        "divide": "lhs / rhs",
    }
    branches = {op: [f"        result = {exprs[op]}"] for op in ops}
    if "divide" in branches:
        branches["divide"][:0] = [
            "        if rhs == 0:",
            _fail(doc, "division by zero", "            "),
        ]
    body += _dispatch(doc, branches)
    body += [
        "    if not isinstance(result, int):",
        f"        result = round(result, {_rounding(doc)})",
    ]
    return _module(
        doc, ["import re"], body + _returns(doc, ops[0] if len(ops) == 1 else "arithmetic")
    )


def _date_lines(doc: ToolDoc, param: str, var: str) -> list[str]:
    """Lines that parse an ISO date parameter, failing politely."""
    return [
        "    try:",
        f"        {var} = datetime.date.fromisoformat(str({param}).strip())",
        "    except ValueError:",
        _fail(doc, f"'{{{param}}}' is not a date in YYYY-MM-DD format"),
    ]


def date_source(doc: ToolDoc) -> str:
    """Write a date tool: add days, weekday, days between, or several behind an operation parameter."""
    roles, ops = doc.roles, [op.split(".")[1] for op in doc.ops]
    body = _date_lines(doc, roles.get("date", roles.get("start", "")), "first")
    branches = {
        "add_days": [
            f"        if {roles.get('days')} is None:",
            _fail(doc, "add_days needs a number of days", "            "),
            f"        result = (first + datetime.timedelta(days=int({roles.get('days')}))).isoformat()",
        ],
        "weekday": [f"        result = {list(WEEKDAYS)!r}[first.weekday()]"],
        "days_between": [
            f"        if {roles.get('end')} is None:",
            _fail(doc, "days_between needs an end date", "            "),
            f"        second = datetime.date.fromisoformat(str({roles.get('end')}).strip())",
            "        result = (second - first).days",
        ],
    }
    body += _dispatch(doc, {op: branches[op] for op in ops})
    return _module(
        doc, ["import datetime"], body + _returns(doc, ops[0] if len(ops) == 1 else "date")
    )


def text_source(doc: ToolDoc) -> str:
    """Write a text tool: reverse, slug, upper case, length, or several behind an operation parameter."""
    ops, text = [op.split(".")[1] for op in doc.ops], doc.roles["text"]
    exprs = {
        "reverse": "value[::-1]",
        "slug": 're.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")',
        "upper": "value.upper()",
        "length": "len(value)",
    }
    body = [f"    value = str({text})"] + _dispatch(
        doc, {op: [f"        result = {exprs[op]}"] for op in ops}
    )
    return _module(doc, ["import re"], body + _returns(doc, ops[0] if len(ops) == 1 else "text"))


def tool_source(doc: ToolDoc, rows: list[dict[str, Any]] | None = None) -> str:
    """Write the Python source of any document (``rows`` are required for lookup tools).

    ``doc.variant`` picks one of three code styles: 0 imports and data at module level, errors
    returned as text; 1 imports and data inside the function, errors raised; 2 a module-level helper,
    errors returned as JSON objects. No name starts with ``_`` (RestrictedPython forbids them).
    """
    if doc.kind:
        return lookup_source(doc, rows or [])
    writers = {
        "convert": convert_source,
        "math": math_source,
        "date": date_source,
        "text": text_source,
    }
    return writers[doc.family](doc)
