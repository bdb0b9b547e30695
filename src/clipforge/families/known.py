"""Well-known checkpoints (data only). params in millions, as published on the model cards (None where no card
gives a figure); ``languages: "multilingual"`` marks checkpoints whose text tower reads many languages (the others
are English); the checkpoint format (transformers or open_clip) is the family's: ``FORMATS``."""

FORMATS = {"openclip": "open_clip"}  # family -> checkpoint format; every other family is transformers format
MULTI = {"languages": "multilingual"}

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
    # multilingual SigLIP (i18n): a 250k-piece SentencePiece vocabulary
    {
        "name": "google/siglip-base-patch16-256-multilingual",
        "params_m": None,
        "embed_dim": 768,
        "image_size": 256,
        **MULTI,
    },
    {"name": "google/siglip-so400m-patch16-256-i18n", "params_m": None, "embed_dim": 1152, "image_size": 256, **MULTI},
    # SigLIP 2, fixed resolution: the same SiglipModel with a Gemma tokenizer (texts lower-cased by default)
    {"name": "google/siglip2-base-patch16-224", "params_m": 375, "embed_dim": 768, "image_size": 224, **MULTI},
    {"name": "google/siglip2-base-patch16-256", "params_m": 375, "embed_dim": 768, "image_size": 256, **MULTI},
    {"name": "google/siglip2-base-patch16-384", "params_m": 375, "embed_dim": 768, "image_size": 384, **MULTI},
    {"name": "google/siglip2-base-patch16-512", "params_m": 375, "embed_dim": 768, "image_size": 512, **MULTI},
    {"name": "google/siglip2-large-patch16-256", "params_m": 882, "embed_dim": 1024, "image_size": 256, **MULTI},
    {"name": "google/siglip2-large-patch16-384", "params_m": 882, "embed_dim": 1024, "image_size": 384, **MULTI},
    {"name": "google/siglip2-large-patch16-512", "params_m": 882, "embed_dim": 1024, "image_size": 512, **MULTI},
    {"name": "google/siglip2-so400m-patch14-224", "params_m": 1136, "embed_dim": 1152, "image_size": 224, **MULTI},
    {"name": "google/siglip2-so400m-patch14-384", "params_m": 1136, "embed_dim": 1152, "image_size": 384, **MULTI},
    {"name": "google/siglip2-so400m-patch16-256", "params_m": 1136, "embed_dim": 1152, "image_size": 256, **MULTI},
    {"name": "google/siglip2-so400m-patch16-384", "params_m": 1136, "embed_dim": 1152, "image_size": 384, **MULTI},
    {"name": "google/siglip2-so400m-patch16-512", "params_m": 1136, "embed_dim": 1152, "image_size": 512, **MULTI},
    {"name": "google/siglip2-giant-opt-patch16-256", "params_m": 1871, "embed_dim": 1536, "image_size": 256, **MULTI},
    {"name": "google/siglip2-giant-opt-patch16-384", "params_m": 1871, "embed_dim": 1536, "image_size": 384, **MULTI},
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
] + [  # multilingual open_clip checkpoints (open_clip.list_pretrained()): text towers with HF tokenizers
    {"name": f"hf-hub:{hub}", "params_m": None, "embed_dim": dim, "image_size": size, **MULTI}
    for hub, dim, size in [
        ("laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k", 512, 224),  # XLM-R base
        ("laion/CLIP-ViT-H-14-frozen-xlm-roberta-large-laion5B-s13B-b90k", 1024, 224),  # XLM-R large
        ("visheratin/nllb-clip-base-oc", 512, 224),  # NLLB-200 encoders
        ("visheratin/nllb-clip-large-oc", 1024, 224),
        ("visheratin/nllb-clip-base-siglip", 768, 384),
        ("visheratin/nllb-clip-large-siglip", 1152, 384),
        ("timm/ViT-B-16-SigLIP-i18n-256", 768, 256),  # SigLIP i18n in open_clip format
        ("timm/ViT-SO400M-16-SigLIP-i18n-256", 1152, 256),
        ("timm/vit_huge_patch14_clip_224.metaclip2_worldwide", 1024, 224),  # MetaCLIP 2, XLM-V tokenizer
        ("timm/vit_huge_patch14_clip_378.metaclip2_worldwide", 1024, 378),
        ("timm/vit_gigantic_patch14_clip_224.metaclip2_worldwide", 1280, 224),
        ("timm/vit_gigantic_patch14_clip_378.metaclip2_worldwide", 1280, 378),
    ]
]

# MetaCLIP 2 "worldwide" in transformers format (MetaClip2Model, XLM-V tokenizer); the distilled s16/b32/l14 came later
METACLIP2_CHECKPOINTS = [
    {"name": f"facebook/metaclip-2-worldwide-{name}", "params_m": None, "embed_dim": dim, "image_size": size, **MULTI}
    for name, dim, size in [
        ("huge-quickgelu", 1024, 224),
        ("huge-378", 1024, 378),
        ("giant", 1280, 224),
        ("giant-378", 1280, 378),
        ("l14", 768, 224),
        ("b32", 512, 224),
        ("s16", 384, 224),
    ]
]

# SigLIP 2 NaFlex (Siglip2Model): aspect kept, a patch budget instead of a resolution; image_size is the side of the
# square the default budget (256 patches of 16 px) covers
SIGLIP2_NAFLEX_CHECKPOINTS = [
    {"name": "google/siglip2-base-patch16-naflex", "params_m": 375, "embed_dim": 768, "image_size": 256},
    {"name": "google/siglip2-so400m-patch16-naflex", "params_m": 1136, "embed_dim": 1152, "image_size": 256},
]
