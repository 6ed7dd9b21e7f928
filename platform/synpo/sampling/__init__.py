"""Caption sampling engines (Hugging Face today; vLLM and contrastive decoding in later work)."""
