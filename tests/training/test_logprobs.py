import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from synpo.storage import Storage
from synpo.training.collate import IGNORE_INDEX, PairCollator
from synpo.training.data import PairDataset
from synpo.training.logprobs import response_logps, token_logps
from synpo.video.sampler import VideoSamplingConfig

VIDEO = VideoSamplingConfig(num_frames=8, max_side=160)


def test_chunked_token_logps_match_log_softmax_and_gradcheck():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 11, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (7,), generator=generator)
    expected = torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1)
    assert torch.allclose(token_logps(logits, targets, chunk_rows=3).double(), expected)
    assert torch.autograd.gradcheck(lambda x: token_logps(x, targets, 3).double(), (logits,))


def _batch(tiny_vlm, rows, count=3):
    processor = AutoProcessor.from_pretrained(tiny_vlm)
    examples = [PairDataset(rows, VIDEO, Storage())[index] for index in range(count)]
    return processor, PairCollator(processor)(examples)


def test_collator_labels_only_responses_with_eos(tiny_vlm, toy_pair_rows):
    processor, batch = _batch(tiny_vlm, toy_pair_rows)
    tokenizer = processor.tokenizer
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    video = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert batch.input_ids.shape[0] == 6 and batch.videos["video_grid_thw"].shape[0] == 3  # 2B sequences, B videos
    for row in range(6):
        labelled = batch.labels[row][batch.labels[row] != IGNORE_INDEX].tolist()
        pair = toy_pair_rows[row % 3]
        text = pair["chosen"] if row < 3 else pair["rejected"]
        assert labelled == tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]  # response + EOS, nothing else
        assert not (batch.labels[row] == video).any()
        assert (batch.labels[row][batch.attention_mask[row] == 0] == IGNORE_INDEX).all()  # padding never labelled
    assert torch.equal(batch.input_ids[0][batch.input_ids[0] == video], batch.input_ids[3][batch.input_ids[3] == video])


def test_response_logps_match_a_naive_full_forward(tiny_vlm, toy_pair_rows):
    processor, batch = _batch(tiny_vlm, toy_pair_rows)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm).eval()
    with torch.no_grad():
        once = response_logps(model, batch, encode_video_once=True)
        twice = response_logps(model, batch, encode_video_once=False)
        logits = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            mm_token_type_ids=batch.mm_token_type_ids,
            pixel_values_videos=torch.cat([batch.videos["pixel_values_videos"]] * 2),
            video_grid_thw=batch.videos["video_grid_thw"].repeat(2, 1),
        ).logits
    labels = batch.labels[:, 1:]
    naive = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    naive = naive * (labels != IGNORE_INDEX)
    assert torch.allclose(once.chosen_logps, naive[:3], atol=1e-5) and torch.allclose(once.rejected_logps, naive[3:], atol=1e-5)
    assert torch.allclose(once.chosen_logps, twice.chosen_logps, atol=1e-6)
    assert torch.equal(once.chosen_mask, labels[:3] != IGNORE_INDEX)
