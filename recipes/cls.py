"""Compression robustness of an image classifier, and how much finetuning on compressed images recovers.

The protocol (shared with ``det.py`` and ``seg.py``, implemented in :mod:`augcomp.experiment`):

1. get the clean model: ``--checkpoint``, pretrained weights by timm name, or ``--clean-epochs`` of training;
2. sweep: top-1 on the validation set compressed at each bpp of ``--bpp-grid`` with each of ``--codecs``
   (default: JPEG, JPEG 2000, AVIF and augcomp-tiny, one codec per family), and clean;
3. finetune one model on compressed training images (library codecs in the DataLoader workers, the torch JPEG
   and neural codecs on the device batch): per image a codec drawn from
   ``--train-codecs`` (default: the sweep's), a bpp from ``--train-bpp``, and ``--clean-share`` of them left clean;
4. sweep again;
5. report to ``--output-dir``: ``results.json``, ``results.md``, ``robustness.png`` and ``matched_bpp.png``
   (at each bitrate, which codec hurts least before and after finetuning).

With no arguments it runs on synthetic scenes whose classes differ by fine texture (a few minutes on a laptop CPU)::

    accelerate launch recipes/cls.py            # or: python recipes/cls.py [--cpu]

ImageNet on 8 GPUs, from timm's pretrained weights::

    accelerate launch --multi_gpu --num_processes 8 recipes/cls.py --data-root /data/imagenet \\
        --model resnet50.a1_in1k --epochs 2 --batch-size 64 --lr 1e-4 --mixed-precision bf16

Your own model or data: ``--model`` takes any timm name (``--model-kwargs`` its options) and ``--data-root`` any
dataset in the ImageFolder layout. For anything else, subclass the task where it differs and use it in ``run``::

    class MyTask(ClassificationTask):
        def build_model(self, settings, data, pretrained):
            return Classifier(my_network(data.num_classes), mean=(0.5,) * 3, std=(0.5,) * 3)  # input: [0, 1] floats

``--help`` shows every option with the value a run uses; ``--dry-run`` prints the plan. ``--resume`` continues an
interrupted run in the same ``--output-dir`` and ends with the results an uninterrupted run would have; a new run into
a folder holding an earlier one is refused unless ``--overwrite`` (which moves the earlier run aside).
"""

from __future__ import annotations

from augcomp.experiment import recipe_entry_point, run_recipe
from augcomp.tasks import ClassificationTask


def run(argv: list[str] | None = None) -> dict | None:
    """Parses ``argv`` (the command line by default) and runs the protocol; returns the results."""
    return run_recipe(ClassificationTask(), __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    recipe_entry_point(ClassificationTask(), __doc__.split("\n\n")[0])
