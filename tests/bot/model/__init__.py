"""Tests of bot/model/: the backends, the model choice, the model's stream and its thinking."""
