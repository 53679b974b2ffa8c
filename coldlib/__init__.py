"""coldlib: the library behind the Cold Diffusion notebook course.

Cold Diffusion (Bansal et al., arXiv 2208.09392) builds diffusion-style generative models on any
degradation D(x, t), not only Gaussian noise. The README's library table says which
module holds each story and which lessons use it.
"""

__version__ = "0.1.0"
