"""Shared data of the distillation tests: soft targets, small classifiers, a closed form."""

import math

import torch
from torch import nn

N, C = 6, 4


def soft(n=N, c=C, scale=1.0):
    return torch.softmax(scale * torch.randn(n, c), -1)


def mlp(d_in=3, hidden=8, d_out=C):
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out))


def closed_form(m, s2, mu, sigma):
    return -0.5 * torch.log(2 * math.pi * sigma**2) - ((m - mu) ** 2 + s2) / (2 * sigma**2)
