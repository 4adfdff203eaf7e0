"""Corpora, splits and the tf.data input pipeline."""
