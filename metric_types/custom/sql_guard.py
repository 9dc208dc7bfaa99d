"""Which custom SQL may run: one read-only query over the two standard views, nothing else.

Custom SQL runs in the platform's own Spark session, where Spark SQL could write tables and
files, change the session, read any table or path, or run Java. So the SQL is parsed with
sqlglot (Spark dialect) and refused, with the reason, unless it is exactly one
``SELECT``/``UNION``/``INTERSECT``/``EXCEPT`` (``WITH`` allowed) that reads only the views
:data:`VIEWS` and the CTEs it defines, and names the output columns :data:`OUTPUT_COLUMNS`.
Spark then runs the SQL re-rendered from the checked tree (comments dropped), never the
user's text, so what was checked is what runs.

Decisions beyond the obvious:

- generators (``explode``, ``posexplode``, ``inline``, ``stack``, ``json_tuple``) are fine in
  the select list and in ``LATERAL VIEW``: they only expand rows already read. Any function
  in ``FROM``/``JOIN`` (a table-valued function such as ``range(10)`` or ``read_files(...)``)
  is refused: some of them read outside the views.
- calls qualified by a database (``db.f(x)``) are refused: they would run a permanent (Hive)
  function, i.e. code the platform does not ship.
- ``${...}`` is refused anywhere, string literals included: Spark substitutes configuration
  and environment values into the text before parsing it.
- hints (``/*+ BROADCAST(e) */``) are kept: they change the plan, not what is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from udf.errors import CustomMetricError

VIEWS = ("exposures", "counted_events")
OUTPUT_COLUMNS = ("experiment", "group", "period_start", "user_id", "value")
DIALECT = "spark"

_ONE_SELECT = "custom SQL must be one read-only SELECT"
_READS_ONLY = f"custom SQL may read only the views {', '.join(VIEWS)}"
_QUERY_STARTS = {TokenType.SELECT, TokenType.WITH, TokenType.FROM, TokenType.L_PAREN}
_NAME_TOKENS = {TokenType.VAR, TokenType.IDENTIFIER, TokenType.STRING, TokenType.NUMBER}
_LABEL_WORDS = {"DIRECTORY", "LOCAL", "DATA", "LAZY", "JAR", "FILE", "ARCHIVE", "VARIABLE"}
_STATEMENT_NAMES = (
    "Insert",
    "Update",
    "Delete",
    "Merge",
    "Copy",
    "Create",
    "Drop",
    "Alter",
    "TruncateTable",
    "Set",
    "Use",
    "Cache",
    "Uncache",
    "LoadData",
    "Refresh",
    "Analyze",
    "Command",
    "Describe",
    "Show",
    "Pragma",
    "Transaction",
    "Commit",
    "Rollback",
    "Grant",
    "Revoke",
    "Kill",
    "Into",
)
_STATEMENTS: tuple[type[exp.Expr], ...] = tuple(
    getattr(exp, name) for name in _STATEMENT_NAMES if hasattr(exp, name)
)
_SET_OPERATIONS = (exp.Union, exp.Intersect, exp.Except)
_GENERATORS = {
    "explode",
    "explode_outer",
    "posexplode",
    "posexplode_outer",
    "inline",
    "inline_outer",
    "stack",
    "json_tuple",
}
_JAVA = "it runs arbitrary Java"
_FILES = "it reveals the files behind the views"
FORBIDDEN_FUNCTIONS = {
    "reflect": _JAVA,
    "java_method": _JAVA,
    "try_reflect": _JAVA,
    "input_file_name": _FILES,
    "input_file_block_start": _FILES,
    "input_file_block_length": _FILES,
}
# Table "databases" that Spark reads as a file format: parquet.`/path`, csv.`s3://...`.
_FILE_FORMATS = {
    "parquet",
    "orc",
    "json",
    "csv",
    "text",
    "avro",
    "binaryfile",
    "delta",
    "iceberg",
    "hudi",
    "jdbc",
    "xml",
}


def check_sql(sql: str) -> str:
    """Return ``sql`` re-rendered for Spark if it is allowed; raise :class:`CustomMetricError` if not."""
    dialect = Dialect.get_or_raise(DIALECT)
    try:
        tokens = dialect.tokenize(sql)
    except TokenError as exc:
        raise CustomMetricError(f"custom SQL does not parse: {exc}") from exc
    statements = _split(tokens)
    if not statements:
        raise CustomMetricError("custom SQL is empty")
    if len(statements) > 1:
        found = ", ".join(_label(s) for s in statements)
        raise CustomMetricError(f"{_ONE_SELECT}; found {len(statements)} statements ({found})")
    if statements[0][0].token_type not in _QUERY_STARTS:
        raise CustomMetricError(f"{_ONE_SELECT}; found {_label(statements[0])}")
    try:
        trees = [tree for tree in dialect.parser().parse(tokens, sql) if tree is not None]
    except ParseError as exc:
        raise CustomMetricError(_parse_message(exc)) from exc
    if len(trees) != 1:
        raise CustomMetricError(f"{_ONE_SELECT}; found {len(trees)} statements")
    root = trees[0]
    _check_statements(root)
    _check_reads(root)
    _check_functions(root)
    _check_output(root)
    rendered = root.sql(dialect=DIALECT, comments=False)
    if "${" in rendered:
        raise CustomMetricError(
            "custom SQL may not contain ${...}: Spark would substitute configuration or "
            "environment values into it"
        )
    return rendered


def output_column_problem(names: Sequence[str]) -> str | None:
    """Why ``names`` are not exactly :data:`OUTPUT_COLUMNS` (any order, case-insensitive), or None."""
    lowered = [name.lower() for name in names]
    problems = []
    missing = [c for c in OUTPUT_COLUMNS if c not in lowered]
    if missing:
        problems.append(f"it lacks {', '.join(missing)}")
    extra = [n for n, low in zip(names, lowered, strict=True) if low not in OUTPUT_COLUMNS]
    if extra:
        problems.append(f"it also returns {', '.join(repr(n) for n in extra)}")
    twice = sorted({n for n in lowered if n in OUTPUT_COLUMNS and lowered.count(n) > 1})
    if twice:
        problems.append(f"it returns {', '.join(repr(n) for n in twice)} more than once")
    if not problems:
        return None
    return f"must return exactly the columns {', '.join(OUTPUT_COLUMNS)}; {'; '.join(problems)}"


def _split(tokens: Sequence[Token]) -> list[list[Token]]:
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    return [s for s in statements if s]


def _label(tokens: Sequence[Token]) -> str:
    """A statement's leading keywords, e.g. ``DROP TABLE`` or ``INSERT OVERWRITE DIRECTORY``."""
    words = [tokens[0].text.upper()]
    for token in tokens[1:5]:
        text = token.text.upper()
        keyword = token.token_type not in _NAME_TOKENS and re.fullmatch(r"[A-Z_]+", text)
        if not (keyword or (token.token_type == TokenType.VAR and text in _LABEL_WORDS)):
            break
        words.append(text)
    return " ".join(words)


def _node_label(node: exp.Expr) -> str:
    if isinstance(node, exp.Into):
        return "SELECT ... INTO"
    tokens = Dialect.get_or_raise(DIALECT).tokenize(node.sql(dialect=DIALECT, comments=False))
    return _label(tokens) if tokens else type(node).__name__.upper()


def _parse_message(exc: ParseError) -> str:
    if not exc.errors:
        return f"custom SQL does not parse: {exc}"
    error = exc.errors[0]
    description = re.sub(
        r"<Token token_type: [^,]*, text: (.*?), line: .*?>", r"'\1'", str(error["description"])
    )
    near = f" (near {error['highlight']!r})" if error.get("highlight") else ""
    return (
        f"custom SQL does not parse at line {error['line']}, column {error['col']}: "
        f"{description}{near}"
    )


def _check_statements(root: exp.Expr) -> None:
    for node in root.walk():
        if isinstance(node, _STATEMENTS):
            where = "" if node is root else " inside it"
            raise CustomMetricError(f"{_ONE_SELECT}; found {_node_label(node)}{where}")
        if isinstance(node, exp.QueryTransform):
            raise CustomMetricError(
                "custom SQL may not run a script (TRANSFORM ... USING): it runs a program on the workers"
            )
    query = _unwrap(root)
    if not isinstance(query, (exp.Select, *_SET_OPERATIONS)):
        raise CustomMetricError(f"{_ONE_SELECT}; found {_node_label(query)}")


def _unwrap(query: exp.Expr) -> exp.Expr:
    while isinstance(query, exp.Subquery):
        query = query.this
    return query


def _check_reads(root: exp.Expr) -> None:
    all_ctes = {cte.alias_or_name.lower() for cte in root.find_all(exp.CTE)}
    for table in root.find_all(exp.Table):
        if table.find_ancestor(exp.Hint) is not None:
            continue  # a hint's argument names an alias, it reads nothing
        if not isinstance(table.this, exp.Identifier):
            raise CustomMetricError(
                f"custom SQL may not read from a table-valued function ({table.this.sql(DIALECT)}); "
                f"read the views {', '.join(VIEWS)}"
            )
        parts = [part.name for part in table.parts]
        shown = ".".join(part.sql(DIALECT) for part in table.parts)
        if _looks_like_path(parts[-1]) or (len(parts) > 1 and parts[-2].lower() in _FILE_FORMATS):
            raise CustomMetricError(f"custom SQL reads a file path ({shown})")
        if len(parts) > 1:
            raise CustomMetricError(
                f"{_READS_ONLY}, without a database or catalog; it reads {'.'.join(parts)!r}"
            )
        name = parts[0].lower()
        if name in VIEWS or name in _visible_ctes(table):
            continue
        hint = " (a CTE can be read only after its definition)" if name in all_ctes else ""
        raise CustomMetricError(f"{_READS_ONLY}; it reads {parts[0]!r}{hint}")
    for lateral in root.find_all(exp.Lateral):
        function = lateral.this
        if isinstance(function, exp.Func) and _function_name(function) not in _GENERATORS:
            raise CustomMetricError(
                f"custom SQL may not read from a table-valued function ({function.sql(DIALECT)}); "
                f"read the views {', '.join(VIEWS)}"
            )


def _looks_like_path(name: str) -> bool:
    return "/" in name or ":" in name or "\\" in name


def _visible_ctes(node: exp.Expr) -> set[str]:
    """Names of the CTEs that a table reference at ``node`` resolves to (earlier ones only)."""
    visible: set[str] = set()
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            ctes = list(parent.expressions)
            index = next((i for i, cte in enumerate(ctes) if cte is child), len(ctes))
            if parent.args.get("recursive"):
                index += 1
            visible.update(_names(ctes[:index]))
        else:
            with_ = parent.args.get("with_") or parent.args.get("with")
            if isinstance(with_, exp.With) and with_ is not child:
                visible.update(_names(with_.expressions))
        child, parent = parent, parent.parent
    return visible


def _names(ctes: Iterable[exp.Expr]) -> set[str]:
    return {cte.alias_or_name.lower() for cte in ctes}


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _check_functions(root: exp.Expr) -> None:
    for node in root.walk():
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            raise CustomMetricError(
                "custom SQL may call only built-in functions, not a database's; "
                f"it calls {node.sql(DIALECT).split('(')[0]}()"
            )
        if isinstance(node, exp.Func):
            names = {_function_name(node), node.sql(DIALECT).split("(")[0].strip().lower()}
            forbidden = sorted(names & FORBIDDEN_FUNCTIONS.keys())
            if forbidden:
                name = forbidden[0]
                raise CustomMetricError(
                    f"custom SQL may not call {name}() ({FORBIDDEN_FUNCTIONS[name]})"
                )


def _check_output(root: exp.Expr) -> None:
    query = _unwrap(root)
    while isinstance(query, _SET_OPERATIONS):  # a set operation's columns are its first query's
        query = _unwrap(query.this)
    if not isinstance(query, exp.Select):
        raise CustomMetricError(f"{_ONE_SELECT}; found {_node_label(query)}")
    names = []
    for column in query.expressions:
        if isinstance(column, exp.Star) or (isinstance(column, exp.Column) and column.is_star):
            raise CustomMetricError(
                f"custom SQL must list its output columns ({', '.join(OUTPUT_COLUMNS)}); "
                f"it selects {column.sql(DIALECT)}"
            )
        if not isinstance(column, (exp.Alias, exp.Column)):
            raise CustomMetricError(
                f"custom SQL must name every output column with AS; {column.sql(DIALECT)} has no name"
            )
        names.append(column.alias_or_name)
    problem = output_column_problem(names)
    if problem:
        raise CustomMetricError(f"custom SQL {problem}")
