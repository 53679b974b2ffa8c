"""coldlib: the library behind the Cold Diffusion notebook course.

Cold Diffusion (Bansal et al., arXiv 2208.09392) builds diffusion-style generative models on any
degradation D(x, t), not only Gaussian noise. Each public function names the lesson that derives it.
"""

__version__ = "0.1.0"
