"""``hwgen demo`` reuses an intact build of the same sources, and only that."""

from hwgen.cli.compile_cmd import compile_zoo_model, resolve_arch
from hwgen.cli.demo_cmd import DEMO_ARCH, DEMO_MODEL, reusable
from hwgen.cli.sources import source_digest


def test_build_is_reused_only_when_intact_and_from_the_same_sources(tmp_path):
    arch, digest = resolve_arch(DEMO_ARCH), source_digest()
    assert len(digest) == 16 and digest == source_digest()
    out = tmp_path / "demo"
    assert not reusable(out, arch, digest)
    compile_zoo_model(DEMO_MODEL, arch, out, settings={"sources": digest})
    assert reusable(out, arch, digest)
    assert not reusable(out, arch, "0" * 16)  # other sources
    assert not reusable(out, resolve_arch("tiny-4x4"), digest)  # another architecture
    v = out / "hwgen_accel.v"
    v.write_text(v.read_text() + "// edited\n")
    assert not reusable(out, arch, digest)  # hash mismatch: recompile
