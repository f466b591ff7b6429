"""The drawing phases of a build, one per module, each returning frozen records (``records.py``):
``images`` (the originals), ``kernels`` (weights), ``responses`` (feature maps of the images),
``mosaics`` (gradient ascent), and ``combine``, which joins them into one ``LayerReport`` a layer.
"""
