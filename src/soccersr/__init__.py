"""soccersr: x4 super-resolution for soccer photos (Real-ESRGAN), and a fine-tune pipeline for match footage.

Public API::

    import soccersr
    model = soccersr.load_model("x4plus")          # built-in name, or a .pth/.safetensors/.pdparams path
    upscaler = soccersr.Upscaler(model, device="auto")
    out = upscaler.upscale(batch)                    # (B,3,H,W) float RGB in [0,1] -> (B,3,4H,4W)
"""

__version__ = "0.1.0"
