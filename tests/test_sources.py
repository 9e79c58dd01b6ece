"""The training-source registry and its builder, on git repositories made here with real git."""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from training.sources import registry
from training.sources.__main__ import main
from training.sources.select import select

REPO_ROOT = Path(__file__).resolve().parent.parent
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main"]


def picture(seed: int, size=(200, 150), mode="RGB") -> Image.Image:
    """A distinct picture: random shapes in random colours on a random background."""
    rng = random.Random(seed)
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        box = (x, y, x + rng.randrange(10, size[0]), y + rng.randrange(10, size[1]))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    return img.convert(mode)


def encoded(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **options)
    return out.getvalue()


def git_repo(path: Path, files: dict[str, bytes]) -> str:
    """A git repository at ``path`` holding ``files`` in one commit; returns the commit."""
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    subprocess.run(GIT + ["init", "-q", str(path)], check=True)
    subprocess.run(GIT + ["-C", str(path), "add", "-A"], check=True)
    subprocess.run(GIT + ["-C", str(path), "commit", "-q", "-m", "images"], check=True)
    return subprocess.run(GIT + ["-C", str(path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def entry(name: str, repo: str, commit: str, kind: str = "histology", **fields) -> str:
    if "pack" not in fields:
        fields.setdefault("include", ["*.png"])
    lines = [f'name = "{name}"', f'label = "{registry.label_of(kind)}"', f'kind = "{kind}"',
             f'upstream = "{fields.pop("upstream", name)}"', f'repo = "{repo}"',
             f'commit = "{commit}"', 'license = "none stated"', 'note = "test"']
    for key, value in fields.items():
        lines.append(f"{key} = {value!r}".replace("'", '"').replace("True", "true"))
    return "[[source]]\n" + "\n".join(lines) + "\n\n"


def gif(seeds) -> bytes:
    frames = [picture(seed, (120, 90)).convert("P") for seed in seeds]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two repositories, a first pack of one source, and a registry naming them."""
    base = tmp_path_factory.mktemp("sources")
    repos = base / "repos"
    shared = picture(7, (300, 220))
    wide = (np.linspace(1000, 9000, 64 * 48).reshape(48, 64)).astype(np.uint16)
    files_a = {
        **{f"slides/a/{n}.png": encoded(picture(n)) for n in range(1, 6)},
        **{f"slides/b/{n}.jpg": encoded(picture(n + 10), "JPEG", quality=95) for n in range(6)},
        "slides/a/masks/m1.png": encoded(picture(90)), "slides/b/masks/m2.png": encoded(picture(91)),
        "slides/a/lfs.png": b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n",
        "slides/a/wide16.png": encoded(Image.fromarray(wide)),
        "slides/a/big.png": encoded(shared),
        "slides/a/tiny.png": encoded(picture(30, (20, 20))),
        "slides/a/flat.png": encoded(Image.new("RGB", (80, 80), (10, 200, 30))),
        "slides/a/notes.txt": b"not an image",
        "clips/clip.gif": gif([41, 42, 43]),
    }
    commit_a = git_repo(repos / "lab+slides", files_a)
    files_b = {
        "pairs/p1.jpg": encoded(picture(51, (400, 200)), "JPEG", quality=95),
        "copies/same.png": files_a["slides/a/3.png"],                        # exact copy
        "copies/smaller.jpg": encoded(shared.resize((150, 110)), "JPEG"),   # resized copy
        "copies/of_pack.png": encoded(picture(61)),                          # the pack has it
        **{f"many/{n:03d}.jpg": encoded(picture(n + 200, (420, 420)), "JPEG", quality=95)
           for n in range(60)},
    }
    commit_b = git_repo(repos / "other" / "figures", files_b)   # the owner/name layout
    pack = base / "shared" / "train"
    pack.mkdir(parents=True)
    pack_images = {f"medical/pk/{n}.png": encoded(picture(n)) for n in (60, 61, 62)}
    with tarfile.open(pack / "pk.tar", "w") as tar:
        for name, data in pack_images.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with (pack / "MANIFEST.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "tar", "label", "source", "modality", "width", "height", "sha256",
                         "origin_repo", "origin_path"])
        for name in pack_images:
            writer.writerow([name, "train/pk.tar", "medical", "pk", "microscopy", 200, 150, "x",
                             "lab/pack", name.split("/")[-1]])
    root = base / "registry"
    (root / "registry").mkdir(parents=True)
    (root / "pack.toml").write_text(
        entry("pk", "lab/pack", "", "fluorescence", pack="pk", upstream="Pack set"))
    (root / "registry" / "a.toml").write_text(
        entry("slides-a", "lab/slides", commit_a, include=["slides/**/*"], exclude=["**/masks/**"])
        + entry("clips", "lab/slides", commit_a, "ultrasound", include=["clips/*.gif"],
                transform="middle-frame"))
    (root / "registry" / "b.toml").write_text(
        entry("halves", "other/figures", commit_b, "aerial", include=["pairs/*.jpg"], transform="left-half")
        + entry("copies", "other/figures", commit_b, include=["copies/*"], upstream="slides-a")
        + entry("many", "other/figures", commit_b, "photo", include=["many/*.jpg"], cap=50, seed=3))
    return {"repos": repos, "pack": pack, "root": root, "base": base}


def build(world, out: Path, *extra: str) -> list[str]:
    return ["--registry", str(world["root"]), "build", "--repos", str(world["repos"]),
            "--out", str(out), "--pack", str(world["pack"]), *extra]


def manifest(out: Path) -> list[dict]:
    with (out / "MANIFEST.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def built(world):
    out = world["base"] / "data"
    assert main(build(world, out)) == 0
    return out


def test_selection_reads_images_matching_the_globs_and_skips_the_rest(world, built):
    rows = {row["origin_path"]: row for row in manifest(built) if row["source"] == "slides-a"}
    assert sorted(rows) == sorted([f"slides/a/{n}.png" for n in range(1, 6)]
                                  + [f"slides/b/{n}.jpg" for n in range(6)]
                                  + ["slides/a/wide16.png", "slides/a/big.png"])
    report = (built / "BUILD.md").read_text()
    assert "| slides-a | medical | histology | 16 | 13 | blank 1, lfs_pointer 1, too_small 1 |" in report
    assert rows["slides/a/big.png"]["width"] == "256"          # 300x220 downscaled to 256 wide
    assert rows["slides/a/big.png"]["path"].endswith(".jpg")
    small = built / rows["slides/a/1.png"]["path"]
    assert small.read_bytes() == encoded(picture(1))           # a small PNG keeps its bytes
    wide = np.asarray(Image.open(built / rows["slides/a/wide16.png"]["path"]))
    assert wide.dtype == np.uint8 and wide.min() == 0 and wide.max() == 255   # 16-bit windowed
    row = rows["slides/a/1.png"]
    assert (row["label"], row["kind"], row["modality"], row["upstream"], row["origin_repo"]) == \
        ("medical", "histology", "microscopy", "slides-a", "lab/slides")
    assert len(row["commit"]) == 40


def test_transforms_take_the_left_half_and_the_middle_gif_frame(built):
    rows = {row["source"]: row for row in manifest(built)}
    assert (rows["halves"]["width"], rows["halves"]["height"]) == ("200", "200")
    frame = Image.open(built / rows["clips"]["path"]).convert("RGB")
    expected = picture(42, (120, 90)).convert("P").convert("RGB")
    assert np.abs(np.asarray(frame, float) - np.asarray(expected, float)).mean() < 1


def test_duplicates_are_removed_across_sources_the_pack_first(built):
    rows = manifest(built)
    copies = [row["origin_path"] for row in rows if row["source"] == "copies"]
    assert copies == []                                        # all three repeat earlier images
    report = (built / "BUILD.md").read_text()
    assert "| copies | medical | histology | 3 | 0 | exact duplicate of pk 1, exact duplicate of " \
           "slides-a 1, near duplicate of slides-a 1 |" in report
    assert [row["source"] for row in rows][:3] == ["pk"] * 3   # the pack comes first
    assert rows[0]["kind"] == "fluorescence" and rows[0]["tar"] == "train/pk.tar"
    files = sorted(str(p.relative_to(built)) for p in built.glob("*/*/*") if p.is_file())
    assert files == sorted(row["path"] for row in rows)        # the manifest is what is on disk


def test_sampling_is_seeded_and_two_builds_give_identical_manifests(world, built, tmp_path):
    assert main(build(world, tmp_path / "again")) == 0
    assert (tmp_path / "again" / "MANIFEST.csv").read_bytes() == (built / "MANIFEST.csv").read_bytes()
    assert sum(row["source"] == "many" for row in manifest(built)) == 50
    assert (built / "sheets" / "many.png").is_file()


def test_a_killed_build_resumes_to_the_same_result(world, built, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "training.sources", *build(world, out)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = out / "non-medical" / "many"
    deadline = time.monotonic() + 20
    while not (folder.is_dir() and any(folder.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / ".build" / "many.json").exists()         # killed inside the last source
    assert not (out / "MANIFEST.csv").exists()
    assert main(build(world, out)) == 0
    assert (out / "MANIFEST.csv").read_bytes() == (built / "MANIFEST.csv").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == \
        sorted(p.name for p in (built / "non-medical" / "many").iterdir())


def test_a_build_stopped_early_then_extended_equals_one_build(world, built, tmp_path):
    out = tmp_path / "stopped"
    assert main(build(world, out, "--stop-after", "2")) == 3
    assert main(build(world, out, "--only", "many", "slides-a", "pk")) == 0
    assert main(build(world, out)) == 0
    assert (out / "MANIFEST.csv").read_bytes() == (built / "MANIFEST.csv").read_bytes()


def test_list_and_kinds_count_the_built_images(world, built, capsys):
    main(["--registry", str(world["root"]), "list", "--format", "csv", "--data", str(built)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "name,label,kind,upstream,repo,images"
    assert "slides-a,medical,histology,slides-a,lab/slides,13" in lines
    assert "copies,medical,histology,slides-a,other/figures,0" in lines
    main(["--registry", str(world["root"]), "kinds", "--format", "csv", "--data", str(built)])
    kinds = {line.split(",")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert kinds["histology"] == "histology,medical,1,1,13,yes"


def test_globs_per_folder_and_cap():
    source = registry.Source("s", "medical", "ct", "u", "o/r", "l", "n", "0" * 40,
                             include=("a/*.png", "deep/**/*.jpg"), exclude=("**/masks/**",),
                             per_folder=2, cap=5, seed=9)
    paths = [f"a/{n}.png" for n in range(4)] + ["a/sub/x.png", "a/masks/m.png", "a/x.txt"] \
        + [f"deep/{d}/{n}.jpg" for d in "pqr" for n in range(3)] + ["deep/masks/y.jpg", "deep/z.jpg"]
    chosen = select(source, paths)
    assert chosen == select(source, list(reversed(paths))) == sorted(chosen)
    assert len(chosen) == 5 and not any("masks" in p or "sub" in p for p in chosen)
    everything = select(registry.Source(**{**source.__dict__, "per_folder": None, "cap": None}), paths)
    assert "deep/z.jpg" in everything and len(everything) == 14
    assert select(registry.Source(**{**source.__dict__, "seed": 10}), paths) != chosen


def write_registry(tmp_path: Path, text: str) -> Path:
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "x.toml").write_text(text)
    return tmp_path


def test_registry_refuses_bad_entries_with_reasons(tmp_path):
    good = "a" * 40
    root = write_registry(tmp_path, entry("ok", "o/r", good)
                          + entry("ok", "o/r2", good)
                          + entry("evalset", "Zhixuhao/UNet", good)
                          + entry("short", "o/r", "abc123")
                          + entry("odd", "o/r", good, "xray-chest").replace('"medical"', '"non-medical"')
                          + entry("unknown", "o/r", good).replace('"histology"', '"xray-knee"')
                          + entry("typo", "o/r", good, exlude=["x"]))
    with pytest.raises(registry.RegistryError) as caught:
        registry.load(root)
    text = str(caught.value)
    assert "'evalset': repo Zhixuhao/UNet is reserved for evaluation" in text
    assert "'short': commit 'abc123' is not 40 lowercase hex digits" in text
    assert "'odd': label 'non-medical' disagrees with kind 'xray-chest'" in text
    assert "'unknown': unknown kind 'xray-knee'" in text
    assert "'typo': unknown field 'exlude'" in text
    assert "'ok': duplicate name (also in x.toml)" in text
    assert len(caught.value.problems) == 6


def test_the_project_registry_loads_with_the_first_pack_first():
    sources = registry.load()
    packs = [s for s in sources if s.pack]
    assert len(packs) == 45 and sources[:45] == packs
    assert "isic224" not in {s.name for s in sources}
    assert all(s.repo.lower() not in {r.lower() for r in registry.RESERVED_REPOS}
               for s in sources if s.name != "faces-mask")


def test_dicom_is_rendered_by_the_products_renderer_and_keeps_no_header_value(tmp_path):
    from tests.support.dicom_files import PATIENT, new_dataset, write
    from training.sources.convert import Skip, convert
    ds = new_dataset("CT", PATIENT)
    ds.set_pixel_data((np.asarray(picture(5, (320, 300)).convert("L"), np.uint16) * 16), "MONOCHROME2", 12)
    stored = convert(write(ds, tmp_path / "ct.dcm").read_bytes(), "dicom", 32)
    assert (stored.ext, stored.width, stored.height) == ("jpg", 256, 240)
    assert not any(value.encode() in stored.data for value in PATIENT.values())
    with pytest.raises(Skip, match="undecodable"):
        convert(b"DICM" * 40, "dicom", 32)


def test_the_builder_refuses_a_reserved_repository(tmp_path):
    root = write_registry(tmp_path, entry("flowers", "atiaisaac/flowers_classification", "b" * 40))
    with pytest.raises(SystemExit, match="atiaisaac/flowers_classification is reserved for evaluation"):
        main(["--registry", str(root), "build", "--repos", str(tmp_path), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_a_second_build_of_the_same_folder_waits_for_the_first(world, tmp_path):
    import fcntl
    out = tmp_path / "locked"
    out.mkdir()
    with (out / ".build.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SystemExit, match="another build is writing"):
            main(build(world, out))
    assert not (out / "MANIFEST.csv").exists()
