"""Well-known checkpoints (data only). params in millions, as published on the model cards."""

CLIP_CHECKPOINTS = [
    {"name": "openai/clip-vit-base-patch32", "params_m": 151, "embed_dim": 512, "image_size": 224},
    {"name": "openai/clip-vit-base-patch16", "params_m": 150, "embed_dim": 512, "image_size": 224},
    {"name": "openai/clip-vit-large-patch14", "params_m": 428, "embed_dim": 768, "image_size": 224},
    {"name": "openai/clip-vit-large-patch14-336", "params_m": 428, "embed_dim": 768, "image_size": 336},
    {"name": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "params_m": 151, "embed_dim": 512, "image_size": 224},
    {"name": "laion/CLIP-ViT-L-14-laion2B-s32B-b82K", "params_m": 428, "embed_dim": 768, "image_size": 224},
    {"name": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "params_m": 986, "embed_dim": 1024, "image_size": 224},
    {"name": "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", "params_m": 2540, "embed_dim": 1280, "image_size": 224},
]

SIGLIP_CHECKPOINTS = [
    {"name": "google/siglip-base-patch16-224", "params_m": 203, "embed_dim": 768, "image_size": 224},
    {"name": "google/siglip-base-patch16-384", "params_m": 203, "embed_dim": 768, "image_size": 384},
    {"name": "google/siglip-large-patch16-256", "params_m": 652, "embed_dim": 1024, "image_size": 256},
    {"name": "google/siglip-so400m-patch14-384", "params_m": 878, "embed_dim": 1152, "image_size": 384},
    # SigLIP 2, fixed resolution: the same SiglipModel with a Gemma tokenizer (texts lower-cased by default)
    {"name": "google/siglip2-base-patch16-224", "params_m": 375, "embed_dim": 768, "image_size": 224},
    {"name": "google/siglip2-base-patch16-256", "params_m": 375, "embed_dim": 768, "image_size": 256},
    {"name": "google/siglip2-base-patch16-384", "params_m": 375, "embed_dim": 768, "image_size": 384},
    {"name": "google/siglip2-base-patch16-512", "params_m": 375, "embed_dim": 768, "image_size": 512},
    {"name": "google/siglip2-large-patch16-256", "params_m": 882, "embed_dim": 1024, "image_size": 256},
    {"name": "google/siglip2-large-patch16-384", "params_m": 882, "embed_dim": 1024, "image_size": 384},
    {"name": "google/siglip2-large-patch16-512", "params_m": 882, "embed_dim": 1024, "image_size": 512},
    {"name": "google/siglip2-so400m-patch14-224", "params_m": 1136, "embed_dim": 1152, "image_size": 224},
    {"name": "google/siglip2-so400m-patch14-384", "params_m": 1136, "embed_dim": 1152, "image_size": 384},
    {"name": "google/siglip2-so400m-patch16-256", "params_m": 1136, "embed_dim": 1152, "image_size": 256},
    {"name": "google/siglip2-so400m-patch16-384", "params_m": 1136, "embed_dim": 1152, "image_size": 384},
    {"name": "google/siglip2-so400m-patch16-512", "params_m": 1136, "embed_dim": 1152, "image_size": 512},
    {"name": "google/siglip2-giant-opt-patch16-256", "params_m": 1871, "embed_dim": 1536, "image_size": 256},
    {"name": "google/siglip2-giant-opt-patch16-384", "params_m": 1871, "embed_dim": 1536, "image_size": 384},
]

# open_clip sources (see clipforge.hub): hf-hub ids of hub-layout checkpoints; OpenAI's files by architecture
OPENCLIP_CHECKPOINTS = [
    {"name": "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "params_m": 151, "embed_dim": 512, "image_size": 224},
    {"name": "hf-hub:laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K", "params_m": 150, "embed_dim": 512, "image_size": 224},
    {"name": "RN50.pt (OpenAI file)", "params_m": 102, "embed_dim": 1024, "image_size": 224},
    {"name": "RN101.pt (OpenAI file)", "params_m": 120, "embed_dim": 512, "image_size": 224},
    {"name": "RN50x4.pt (OpenAI file)", "params_m": 178, "embed_dim": 640, "image_size": 288},
    {"name": "RN50x16.pt (OpenAI file)", "params_m": 291, "embed_dim": 768, "image_size": 384},
    {"name": "RN50x64.pt (OpenAI file)", "params_m": 623, "embed_dim": 1024, "image_size": 448},
]

# SigLIP 2 NaFlex (Siglip2Model): aspect kept, a patch budget instead of a resolution; image_size is the side of the
# square the default budget (256 patches of 16 px) covers
SIGLIP2_NAFLEX_CHECKPOINTS = [
    {"name": "google/siglip2-base-patch16-naflex", "params_m": 375, "embed_dim": 768, "image_size": 256},
    {"name": "google/siglip2-so400m-patch16-naflex", "params_m": 1136, "embed_dim": 1152, "image_size": 256},
]
