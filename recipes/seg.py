"""Compression robustness of a semantic segmentation model, and how much finetuning on compressed images recovers.

The protocol (shared with ``cls.py`` and ``det.py``, implemented in :mod:`augcomp.experiment`):

1. get the clean model: ``--checkpoint``, or ``--clean-epochs`` of training (add ``--pretrained`` to start from a
   pretrained timm backbone; the FPN head has no pretrained weights);
2. sweep: mIoU on the validation set compressed at each bpp of ``--bpp-grid`` with each of ``--codecs``
   (default: JPEG, JPEG 2000, AVIF and augcomp-tiny, one codec per family), and clean;
3. finetune one model on compressed training images (library codecs in the DataLoader workers, the torch JPEG
   and neural codecs on the device batch): per image a codec drawn from
   ``--train-codecs`` (default: the sweep's), a bpp from ``--train-bpp``, and ``--clean-share`` of them left clean;
4. sweep again;
5. report to ``--output-dir``: ``results.json``, ``results.md``, ``robustness.png`` and ``matched_bpp.png``
   (at each bitrate, which codec hurts least before and after finetuning).

With no arguments it runs on synthetic scenes whose object classes differ by fine texture (a few minutes on a laptop
CPU)::

    accelerate launch recipes/seg.py            # or: python recipes/seg.py [--cpu]

ADE20K on 8 GPUs: an ImageNet-pretrained backbone, clean training, then the protocol::

    accelerate launch --multi_gpu --num_processes 8 recipes/seg.py --data-root /data/ADEChallengeData2016 \\
        --model convnext_tiny.fb_in22k --pretrained --clean-epochs 64 --clean-lr 2e-4 --epochs 8 --lr 6e-5 \\
        --batch-size 4 --mixed-precision bf16

Your own model or data: ``--model`` takes any timm backbone name; ``--data-root`` any dataset in the ADE20K layout.
For anything else, subclass the task where it differs and use it in ``run`` (``build_model`` returns a module
mapping float images in [0, 1] to per-pixel logits; ``build_data`` returns a ``DataBundle``).

``--help`` shows every option with the value a run uses; ``--dry-run`` prints the plan. ``--resume`` continues an
interrupted run in the same ``--output-dir`` and ends with the results an uninterrupted run would have; a new run into
a folder holding an earlier one is refused unless ``--overwrite`` (which moves the earlier run aside).
"""

from __future__ import annotations

from augcomp.experiment import recipe_entry_point, run_recipe
from augcomp.tasks import SegmentationTask


def run(argv: list[str] | None = None) -> dict | None:
    """Parses ``argv`` (the command line by default) and runs the protocol; returns the results."""
    return run_recipe(SegmentationTask(), __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    recipe_entry_point(SegmentationTask(), __doc__.split("\n\n")[0])
