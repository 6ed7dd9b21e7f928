"""A byte-level BPE tokenizer trained locally on toy-world text and the platform's prompts.

No hub: the tiny models' tokenizer is trained here, in seconds, with the ``tokenizers`` library.
Special tokens follow Qwen2-VL's names so the stock ``Qwen2VLProcessor`` finds them.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from synpo.toy.videos import DEFAULT_PROMPT
from synpo.toy.world import describe_scene, describe_window, make_scene

PAD_TOKEN = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]

# Our own chat template: Qwen-style turns; a {"type": "video"} part becomes one video placeholder
# that the processor expands to the right number of <|video_pad|> tokens.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

EXTRA_TEXT = [
    DEFAULT_PROMPT,
    "Describe the video clip in detail. Do not state anything you are not sure about.",
    "Here is a previous description of the video. It may contain irrelevant or wrong words and need not "
    "be kept whole. Write an improved description that is coherent, more accurate and more detailed, "
    "with more temporal information: the activities, the scene changes and their order.",
    "Previous description:",
    "Improved description:",
    "You are a careful judge of video captions. Reply in JSON with the keys reasoning and score.",
    '{"reasoning": "The caption matches the clip captions.", "score": 4}',
    "system user assistant the a an of and to in on with at from is are was were it this that video image",
]


def training_corpus(num_scenes: int = 600, seed: int = 12345) -> list[str]:
    """Toy-world captions (whole videos and clips) plus the prompts: the text the tiny models speak."""
    corpus = list(EXTRA_TEXT)
    for index in range(num_scenes):
        scene = make_scene(seed + index)
        corpus.append(describe_scene(scene))
        corpus.append(describe_window(scene, 0.0, scene.duration_s / 2))
    return corpus


def train_tokenizer(vocab_size: int = 1024, seed: int = 12345) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE tokenizer (deterministic for a given corpus and vocab size)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(seed=seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        extra_special_tokens={"image_token": IMAGE_PAD, "video_token": VIDEO_PAD},
        model_max_length=8192,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
