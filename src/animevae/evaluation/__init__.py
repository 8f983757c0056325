"""Evaluation: the report of ``animevae evaluate``, its metrics, image features and the two-sample test."""
