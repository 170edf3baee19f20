"""Run docs/argocd/health.lua the way Argo CD does, in real Lua (lupa).

Argo CD evaluates health scripts in gopher-lua (Lua 5.1) with only the base, table and
package libraries and a safe ``os`` (``time``, ``date``). ``health`` below gives the
script exactly that, in Lua 5.1 and in Lua 5.4: without the string library (string
methods included) and the math library, so a script that needs either fails here as it
would in Argo CD, and one that leans on 5.1-only or 5.3+-only behaviour fails in one of
the two runtimes.
"""

from __future__ import annotations

import calendar
import datetime
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
HEALTH_LUA = REPO / "docs" / "argocd" / "health.lua"
RUNTIMES = ("lua51", "lua54")

# Argo CD's Lua environment: what the script may use, nothing more. The string
# metatable's __index goes too, or ("x"):sub() would still work.
SANDBOX = """
local now = ...
local real_date, real_time = os.date, os.time
getmetatable("").__index = nil
string, math, io, debug, coroutine, utf8, bit32 = nil, nil, nil, nil, nil, nil, nil
for _, name in ipairs({"string", "math", "io", "debug", "coroutine", "utf8", "bit32"}) do
  package.loaded[name] = nil
end
if now == nil then
  os = { time = real_time, date = real_date }
else
  os = {
    time = function(t) if t == nil then return now end return real_time(t) end,
    date = function(format, t) return real_date(format, t or now) end,
  }
end
package.loaded.os = os
"""


def epoch(stamp: str) -> int:
    """Unix seconds of a time written as the operator writes it (2026-11-24T00:00:00Z)."""
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    return calendar.timegm(moment.timetuple())


def _to_lua(lua: Any, value: Any) -> Any:
    """A JSON-like value as Argo CD hands it to Lua: lists 1-based, maps keyed."""
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def run_lua(
    script: str, obj: dict[str, Any], now: str | None = None, runtime: str = "lua54"
) -> Any:
    """What ``script`` returns with ``obj`` as its global, in Argo CD's environment;
    ``now`` fixes the clock it reads (os.time, os.date), None leaves the real one."""
    lupa = importlib.import_module(f"lupa.{runtime}")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.execute(SANDBOX, None if now is None else epoch(now))
    lua.globals().obj = _to_lua(lua, obj)
    return lua.execute(script)


def health(obj: dict[str, Any], now: str | None = None, runtime: str = "lua54") -> dict[str, Any]:
    """{status, message} of ``obj`` as docs/argocd/health.lua says (its ``hs``)."""
    result = run_lua(HEALTH_LUA.read_text(), obj, now, runtime)
    lupa = importlib.import_module(f"lupa.{runtime}")
    assert lupa.lua_type(result) == "table", f"the script returned {result!r}, not a table"
    assert set(result.keys()) == {"status", "message"}
    return {key: result[key] for key in ("status", "message")}


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """Each Lua the script must run in: 5.1 (gopher-lua's language) and 5.4."""
    return str(request.param)


@pytest.fixture
def run_health(runtime: str) -> Callable[..., dict[str, Any]]:
    def run(obj: dict[str, Any], now: str | None = None) -> dict[str, Any]:
        return health(obj, now, runtime)

    return run


@pytest.fixture
def run_script(runtime: str) -> Callable[..., Any]:
    def run(script: str, obj: dict[str, Any], now: str | None = None) -> Any:
        return run_lua(script, obj, now, runtime)

    return run
