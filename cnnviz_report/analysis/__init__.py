"""TensorFlow work that returns numpy: kernels, feature maps, gradient-ascent images."""
