"""The only code that imports the framework (TensorFlow, Keras): it walks a model into plain
records (``keras_walk``) and runs it, returning numpy: kernels, feature maps, gradient-ascent
images, attributions."""
