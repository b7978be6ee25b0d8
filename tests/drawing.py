"""The one way the tests look at a drawing function's picture."""

import matplotlib.pyplot as plt
import numpy as np


def rendered(draw, value, figsize, dpi=None, **kw):
    """``draw(ax, value, **kw)`` on a fresh figure of ``figsize`` inches: its RGBA pixels and the axes
    (for titles and limits; the figure itself is closed)."""
    fig = plt.figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    draw(ax, value, **kw)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels, ax
