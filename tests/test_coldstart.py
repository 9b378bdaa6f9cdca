"""Ready in a second (issue 19): kernels cached on disk, light imports, warmup.

The cache tests run the encode/decode work in fresh interpreters: the first compiles every
kernel the work needs into ``BIGCOMP_CACHE_DIR``, the second must load every one of them
(numba's dispatcher statistics: cache hits, no misses) and write nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numba import prange
from typer.testing import CliRunner

import bigcomp
from bigcomp.kernels import _cache
from bigcomp.kernels._numba import jit, pjit

PACKAGE = Path(bigcomp.__file__).parent

# every coder, mode and buffer kind on uint16 chunks; small chunks run the serial kernels
WORKLOAD = """
import json
import numpy as np
import bigcomp
from bigcomp.kernels._cache import cache_dir
from bigcomp.kernels._numba import dispatchers

cam = bigcomp.CameraModel(2.0, 10.0, 1.5)
rng = np.random.default_rng(0)
for shape in ((4, 32, 256), (24, 40)):
    data = (10 + 2 * rng.poisson(20, shape)).astype(np.uint16)
    frozen = data.copy()
    frozen.flags.writeable = False
    for coder in ("fast", "max", "rice"):
        for q, order in ((0, "qp"), (1, "qp"), (1, "pq")):
            for a in (data, frozen):
                chunk = bigcomp.encode_chunk(a, q=q, camera=cam if q else None, coder=coder,
                                             order=order)
                for buf in (chunk, bytearray(chunk)):
                    out = bigcomp.decode_chunk(buf)
                    assert q or (out == data).all()
stats = {}
for d in dispatchers():
    name = d.py_func.__module__ + "." + d.py_func.__qualname__
    name += "[p]" if d.targetoptions.get("parallel") else ""
    s = d.stats
    stats[name] = (sum(s.cache_hits.values()), sum(s.cache_misses.values()))
print(json.dumps({"stats": stats, "cache": str(cache_dir())}))
"""


def _env(cache, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BIGCOMP_NUMBA_CACHE", "NUMBA_CACHE_DIR")}
    return {**env, "BIGCOMP_CACHE_DIR": str(cache), **extra}


def _run(code: str, cache, prefix=(), **extra) -> subprocess.CompletedProcess:
    result = subprocess.run([*prefix, sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
                            env=_env(cache, **extra), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _listing(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The workload in two processes started at once on an empty cache folder (workers
    starting together), then in a third one."""
    cache = tmp_path_factory.mktemp("kernel-cache")
    procs = [subprocess.Popen([sys.executable, "-W", "error", "-c", WORKLOAD], env=_env(cache),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    first, other = (json.loads(out.splitlines()[-1]) for out, _ in outs)
    for name, (hits, misses) in other["stats"].items():  # what either compiled or loaded
        h, m = first["stats"][name]
        first["stats"][name] = (h + hits, m + misses)
    between = _listing(cache)
    second = json.loads(_run(WORKLOAD, cache).stdout.splitlines()[-1])
    if second["cache"] != first["cache"]:  # the cache did its job: new sources, new folder
        pytest.skip("bigcomp/kernels changed while the test ran (someone is editing them)")
    return {"cache": cache, "first": first, "second": second, "between": between}


def test_first_process_compiles_into_the_cache_dir(runs):
    misses = sum(m for _, m in runs["first"]["stats"].values())
    assert misses > 10
    folder = Path(runs["first"]["cache"])
    assert folder.parent == runs["cache"]  # BIGCOMP_CACHE_DIR is honoured
    entries = list(folder.glob("*.nbc"))  # one per kernel and signature, whoever compiled it
    assert len(entries) >= len([name for name, (_, m) in runs["first"]["stats"].items() if m])
    assert not list(folder.glob("*.tmp.*"))


def test_next_process_loads_every_kernel_from_the_cache(runs):
    first, second = runs["first"]["stats"], runs["second"]["stats"]
    missed = {name: m for name, (_, m) in second.items() if m}
    assert not missed, f"compiled again instead of loaded: {missed}"
    # every kernel the work called from Python was loaded (their callees need no loading)
    called = {name for name, (hits, _) in second.items() if hits}
    assert len(called) >= 25
    assert called <= {name for name, (h, m) in first.items() if h or m}
    for kernel in ("_fused._fused_kernel", "_fused._fused_decode_kernel",
                   "_fused_rice._fused_kernel", "_fused_rice._fused_decode_kernel",
                   "_rans._enc_pass1", "_rans._dec_kernel", "_rice._decode_kernel",
                   "_predict._encode_kernel", "_predict._decode_kernel",
                   "_dpcm.dpcm_encode_kernel", "_dpcm.dpcm_decode_kernel",
                   "_lookup._lookup_kernel", "_coders._fast_unpack"):
        assert f"bigcomp.kernels.{kernel}" in called


def test_warm_process_writes_nothing(runs):
    assert _listing(runs["cache"]) == runs["between"]


def test_nothing_is_written_into_the_package(runs):
    assert not [p for p in PACKAGE.rglob("*") if p.suffix in (".nbi", ".nbc")]


def _without_root_powers() -> list[str]:
    """Command prefix under which file permissions bind this process ([] when not root)."""
    if not hasattr(os, "geteuid"):
        pytest.skip("POSIX permissions")
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("file permissions do not bind root (and setpriv is missing)")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]


def test_read_only_cache_dir(runs):
    """A read-only cache serves what it has; kernels it lacks compile, nothing is saved,
    nothing is warned."""
    prefix = _without_root_powers()
    cache = runs["cache"]
    dirs = [cache, *(p for p in cache.rglob("*") if p.is_dir())]
    for d in dirs:
        d.chmod(0o555)
    try:
        code = WORKLOAD + textwrap.dedent("""
            from bigcomp.kernels import _cache
            data = np.arange(64, dtype=np.uint8).reshape(8, 8)  # kernels the cache lacks
            assert (bigcomp.decode_chunk(bigcomp.encode_chunk(data, coder="rice")) == data).all()
            assert _cache._saves_failed
            """)
        result = _run(code, cache, prefix)
        stats = json.loads(result.stdout.splitlines()[-1])["stats"]
        assert not result.stderr
        assert sum(h for h, _ in stats.values()) > 0
        assert not sum(m for _, m in stats.values())
    finally:
        for d in dirs:
            d.chmod(0o755)
    assert _listing(cache) == runs["between"]


def test_uncreatable_cache_dir_falls_back_to_compiling(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    code = """
        import numpy as np
        import bigcomp
        data = np.arange(64, dtype=np.uint8).reshape(8, 8)
        chunk = bigcomp.encode_chunk(data, coder="fast")
        assert (bigcomp.decode_chunk(chunk) == data).all()
    """
    result = _run(code, blocker / "cache")
    assert not result.stderr
    assert blocker.is_file()


# ---------------------------------------------------------------------- in-process mechanics
def _axpy(a, x, y):
    for i in range(x.size):
        y[i] += a * x[i]


def _psum(x):
    total = 0.0
    for i in prange(x.size):
        total += x[i]
    return total


@pytest.fixture
def cache_here(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGCOMP_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("BIGCOMP_NUMBA_CACHE", raising=False)
    monkeypatch.setattr(_cache, "_saves_failed", False)
    return tmp_path / "c"


def test_new_dispatcher_loads_what_another_compiled(cache_here):
    x, y = np.arange(5.0), np.zeros(5)
    jit(_axpy)(2.0, x, y)
    again = jit(_axpy)
    again(1.0, x, y)
    np.testing.assert_array_equal(y, 3 * x)
    assert sum(again.stats.cache_hits.values()) == 1
    assert sum(again.stats.cache_misses.values()) == 0
    assert _cache.cache_dir().parent == cache_here


def test_parallel_and_serial_compilations_are_separate_entries(cache_here):
    par, ser = pjit(_psum)
    x = np.arange(10.0)
    assert par(x) == ser(x) == 45.0
    assert len(list(_cache.cache_dir().glob("*_psum*.nbc"))) == 2
    par2, ser2 = pjit(_psum)
    assert par2(x) == ser2(x) == 45.0
    assert sum(par2.stats.cache_hits.values()) == sum(ser2.stats.cache_hits.values()) == 1
    assert par2.targetoptions["parallel"]
    assert not ser2.targetoptions.get("parallel")


def test_failed_save_is_silent(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BIGCOMP_CACHE_DIR", str(blocker / "c"))
    monkeypatch.setattr(_cache, "_saves_failed", False)
    x, y = np.arange(3.0), np.zeros(3)
    jit(_axpy)(1.0, x, y)  # filterwarnings = error: a warning would fail here
    np.testing.assert_array_equal(y, x)
    assert _cache._saves_failed


def test_cache_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("BIGCOMP_NUMBA_CACHE", "0")
    assert not _cache.cache_enabled()
    f = jit(_axpy)
    assert not isinstance(f._cache, _cache.KernelCache)


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("BIGCOMP_CACHE_DIR", raising=False)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "nb"))
    assert _cache.cache_root() == tmp_path / "nb" / "bigcomp"
    monkeypatch.setenv("BIGCOMP_CACHE_DIR", str(tmp_path / "own"))
    assert _cache.cache_root() == tmp_path / "own"
    monkeypatch.delenv("BIGCOMP_CACHE_DIR")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert _cache.cache_root().name.lower() in ("bigcomp", "cache")


def test_codegen_settings_get_their_own_folder(monkeypatch):
    """A NUMBA_BOUNDSCHECK=1 run neither loads nor leaves behind unchecked kernels."""
    from numba.core import config

    before = _cache._sources_hash()
    with monkeypatch.context() as m:
        m.setattr(config, "BOUNDSCHECK", not config.BOUNDSCHECK)
        _cache._sources_hash.cache_clear()
        changed = _cache._sources_hash()
    _cache._sources_hash.cache_clear()
    assert changed != before
    assert _cache._sources_hash() == before


# ------------------------------------------------------------------------------- imports
HEAVY = ("torch", "scipy", "skimage", "pandas", "matplotlib", "distributed", "xarray", "numba",
         "zarr", "dask")


def _modules_after(code: str) -> set[str]:
    code += "\nimport sys\nprint('\\n' + ' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return {m.split(".")[0] for m in out.splitlines()[-1].split()}


def test_import_bigcomp_is_light():
    assert not _modules_after("import bigcomp") & set(HEAVY)


def test_help_is_light():
    code = textwrap.dedent("""
        import sys
        sys.argv = ["bigcomp", "--help"]
        from bigcomp.cli import app
        try:
            app(prog_name="bigcomp")
        except SystemExit:
            pass
    """)
    assert not _modules_after(code) & set(HEAVY)


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "bigcomp", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "warmup" in out
    assert "compress" in out


@pytest.mark.parametrize("first", ["bigcomp", "xarray"])
def test_accessor_registered_whatever_the_import_order(first):
    second = "xarray" if first == "bigcomp" else "bigcomp"
    code = f"""
import {first}
import {second}
import xarray as xr
assert hasattr(xr.DataArray([1]), "bigcomp")
assert type(xr).__name__ == "module" and xr.__spec__.loader.__class__.__name__ != "_RegisteringLoader"
print("ok")
"""
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_lazy_public_names():
    assert bigcomp.encode_chunk is bigcomp.chunk.encode_chunk
    assert bigcomp.warmup.__module__ == "bigcomp._warmup"
    assert isinstance(bigcomp.__version__, str)
    assert {"warmup", "encode_chunk", "codecs"} <= set(dir(bigcomp))
    with pytest.raises(AttributeError):
        bigcomp.no_such_name  # noqa: B018


# -------------------------------------------------------------------------------- warmup
def test_warmup_rejects_unknown_names():
    with pytest.raises(bigcomp.ParameterError):
        bigcomp.warmup(dtypes=["int64"])
    with pytest.raises(bigcomp.ParameterError):
        bigcomp.warmup(coders=["zstd"])
    from bigcomp.cli import app

    result = CliRunner().invoke(app, ["warmup", "--coder", "zstd"])
    assert result.exit_code == 2


def test_warmup_then_every_variant_loads(runs):
    """warmup fills the cache with the parallel twins of the kernels it ran, too: a second
    warmup compiles nothing."""
    code = """
        import json
        import bigcomp
        r = bigcomp.warmup(dtypes=["uint8"], coders=["fast"])
        print(json.dumps([r.compiled, r.loaded, r.writable, r.cache_dir]))
    """
    compiled, _, writable, folder = json.loads(_run(code, runs["cache"]).stdout.splitlines()[-1])
    assert compiled > 0
    assert writable
    assert Path(folder).parent == runs["cache"]
    compiled, loaded, _, _ = json.loads(_run(code, runs["cache"]).stdout.splitlines()[-1])
    assert compiled == 0
    assert loaded > 0


def test_worker_plugin_is_a_distributed_worker_plugin():
    pytest.importorskip("distributed")
    from distributed.diagnostics.plugin import WorkerPlugin

    plugin = bigcomp.WarmupPlugin(dtypes=["uint16"])
    assert isinstance(plugin, WorkerPlugin)
    assert plugin.kwargs == {"dtypes": ("uint16",)}
