"""Non-medical samples: clipart, icons, stamps, wallpapers, emoji and sample photos from installed packages."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Iterator

from medcrawl.labels import NON_MEDICAL
from medcrawl.model.images import open_image
from medcrawl.samples.packages import Package, deb_files, npm_root
from medcrawl.samples.sources import MATPLOTLIB, SKIMAGE, FileSource, Sample, SampleFiles, crops


class OpenClipart(FileSource):
    name, label, modality = "pkg-openclipart", NON_MEDICAL, "clipart"
    packages, roots = (Package("deb", "openclipart-png"),), ("/usr/share/openclipart/png",)


class OxygenIcons(FileSource):
    name, label, modality = "pkg-oxygen-icons", NON_MEDICAL, "icon"
    packages, roots = (Package("deb", "oxygen-icon-theme"),), ("/usr/share/icons/oxygen/base/256x256",)


class TuxpaintStamps(FileSource):
    """Tux Paint stamps: cut-out photos and drawings of objects, animals, food, letters."""

    name, label, modality = "pkg-tuxpaint-stamps", NON_MEDICAL, "stamp"
    packages, roots = (Package("deb", "tuxpaint-stamps-default"),), ("/usr/share/tuxpaint/stamps",)
    lossless = False


class Wallpapers(FileSource):
    """Desktop wallpapers (mostly photos): the whole picture plus a few random crops."""

    name, label, modality = "pkg-wallpapers", NON_MEDICAL, "photo"
    packages = (Package("deb", "mate-backgrounds"), Package("deb", "ukui-wallpapers"),
                Package("deb", "lomiri-wallpapers-20.04"))
    lossless = False
    crops_per_image = 3

    def all_keys(self) -> list[str]:
        keys = [p for package in self.packages for p in deb_files(package.name)
                if re.search(r"\.(jpe?g|png)$", p, re.I) and p.startswith("/usr/share/backgrounds/")]
        # one entry per picture: the largest of the resolutions a package ships
        best: dict[str, str] = {}
        for key in sorted(keys, key=lambda k: Path(k).stat().st_size):
            best[re.sub(r"_\d+x\d+(?=\.)", "", key)] = key
        return sorted(best.values())

    def package_for(self, key: str) -> Package:
        return next(p for p in self.packages if key in deb_files(p.name))

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        img, _ = open_image(Path(key).read_bytes(), draft_size=1024)
        img = img.convert("RGB")
        package = self.package_for(key)
        yield Sample(img, key, self.modality, package)
        for i, crop in enumerate(crops(img, rng, self.crops_per_image)):
            yield Sample(crop, f"{key}#crop{i + 1}", self.modality, package)


EMOJI_PACKAGES = (
    Package("npm", "emoji-datasource-google", "Apache-2.0 (Noto emoji images)"),
    Package("npm", "emoji-datasource-twitter", "CC-BY-4.0 (Twemoji images)"),
)


class Emoji(FileSource):
    """64 px emoji images of the Google (Noto) and Twitter (Twemoji) sets."""

    name, label, modality = "pkg-emoji", NON_MEDICAL, "emoji"
    packages = EMOJI_PACKAGES

    def base_dirs(self) -> list[Path]:
        return [npm_root() / p.name / "img" / p.name.rsplit("-", 1)[1] / "64" for p in self.packages]

    def package_for(self, key: str) -> Package:
        return next(p for p in self.packages if f"/{p.name}/" in key)


class SamplePhotos(SampleFiles):
    """Colour photos and logos shipped with scikit-image and matplotlib."""

    name, label, modality = "pkg-sample-photos", NON_MEDICAL, "photo"
    files = tuple((SKIMAGE, n) for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                                         "motorcycle_left.png", "hubble_deep_field.jpg",
                                         "logo.png", "color.png")) + \
        tuple((MATPLOTLIB, n) for n in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png",
                                        "logo2.png"))
