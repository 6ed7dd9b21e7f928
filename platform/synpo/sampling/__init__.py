"""Caption sampling: one request/result interface (:mod:`~synpo.sampling.request`), the Hugging Face engine
with video contrastive decoding (:mod:`~synpo.sampling.hf_engine`, :mod:`~synpo.sampling.contrastive`), the
vLLM engine (:mod:`~synpo.sampling.vllm_engine`), self-retrospective refinement's two passes
(:mod:`~synpo.sampling.passes`) and the engine settings and factory (:mod:`~synpo.sampling.engine`)."""
