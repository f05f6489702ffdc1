"""Names of the choices that the command line lists, kept free of heavy imports.

The modules that implement them (:mod:`gradmatch.matching`,
:mod:`gradmatch.networks`) import torch; ``gradmatch --help`` should not.
"""

#: Values of ``match``: which gradients are compared (the paper's Table 1).
MATCH_RULES = ("intra", "inter", "interleaved", "multilevel")

#: Values of ``model``: the networks gradmatch builds.
MODELS = ("convnet", "mlp", "lenet", "alexnet", "vgg11", "vgg11bn", "resnet18", "resnet18bn")
