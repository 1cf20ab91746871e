"""Image classifiers from torchvision and timm, small widths and 32-64 px inputs."""

from __future__ import annotations

from functools import partial

from ..libraries import import_torchvision
from ..spec import ZooModel
from ._common import CLASSES, image, timm_class, timm_model, torchvision_model

_BOTH = ("onnx", "onnx-dynamo", "pt2")


def _tv(name: str, path: str, *, size: int = 64, fast: bool = False, formats=("onnx",), note: str = "", **kwargs) -> ZooModel:
    make = partial(torchvision_model, path, num_classes=CLASSES, **kwargs)
    return ZooModel(name, "torchvision", "vision", make, image(size), ("logits",), fast, tuple(formats), note)


def _timm(name: str, arch: str, *, size: int = 64, fast: bool = False, formats=("onnx",), note: str = "", **kwargs) -> ZooModel:
    make = partial(timm_model, arch, num_classes=CLASSES, **kwargs)
    return ZooModel(name, "timm", "vision", make, image(size), ("logits",), fast, tuple(formats), note)


def _resnet_bottleneck():
    """ResNet-50's bottleneck blocks, one per stage."""
    resnet = import_torchvision().models.resnet
    return resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], num_classes=CLASSES).eval()


MODELS = [
    _tv("resnet18", "resnet18", formats=_BOTH),
    ZooModel("resnet_bottleneck", "torchvision", "vision", _resnet_bottleneck, image(), ("logits",)),
    _tv("mobilenet_v2", "mobilenet_v2", width_mult=0.5, formats=_BOTH),
    _tv("mobilenet_v3_small", "mobilenet_v3_small", width_mult=0.5, size=32, fast=True),
    _tv("mobilenet_v3_large", "mobilenet_v3_large", width_mult=0.5),
    _tv("efficientnet_b0", "efficientnet_b0"),
    _tv("regnet_x_400mf", "regnet_x_400mf"),
    _tv("regnet_y_400mf", "regnet_y_400mf"),
    _tv("densenet_small", "densenet.DenseNet", growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16),
    _tv("shufflenet_v2", "shufflenet_v2_x0_5", formats=_BOTH),
    _tv("squeezenet1_1", "squeezenet1_1", formats=_BOTH),
    _tv("mnasnet0_5", "mnasnet0_5"),
    _tv("googlenet", "googlenet", aux_logits=False, init_weights=True),
    _tv(
        "vit_torchvision",
        "vision_transformer.VisionTransformer",
        size=32,
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
    ),
    _timm("convnext", "convnext_atto", depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), formats=_BOTH),
    _timm("vit_timm", "vit_tiny_patch16_224", size=32, img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, formats=_BOTH),
    _timm("deit_distilled", "deit_tiny_distilled_patch16_224", size=32, img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2),
    # Swin-T's own 7 x 7 windows: 49 keys, not a whole number of vectors.
    _timm("swin", "swin_tiny_patch4_window7_224", size=112, img_size=112, window_size=7, embed_dim=32, depths=(1, 1), num_heads=(2, 4)),
    ZooModel("mlp_mixer", "timm", "vision", partial(timm_class, "models.mlp_mixer.MlpMixer", num_classes=CLASSES, img_size=32,
                                                     patch_size=8, num_blocks=2, embed_dim=64), image(32), ("logits",)),
    _timm("mobilevit_xxs", "mobilevit_xxs"),
    _timm("ghostnet", "ghostnet_050"),
    # Architectures first built at stop 41 (each found a defect or stands for a family the zoo lacked).
    _timm("efficientvit_m0", "efficientvit_m0", note="chunk: Slice bounds computed from shapes"),
    _timm("mobileone", "mobileone_s0", note="unfused training branches: outputs near 1e14"),
    _timm("fastvit", "fastvit_t8"),
    _timm("pvt_v2", "pvt_v2_b0"),
    _timm("edgenext", "edgenext_xx_small"),
    _tv("inception_v3", "inception_v3", size=80, aux_logits=False, init_weights=True),
    # TensorFlow-style "SAME" padding: explicit Pad nodes before convolutions.
    _timm("efficientnet_lite_tf", "tf_efficientnet_lite0"),
    _timm("levit", "levit_128s", img_size=64),
]
