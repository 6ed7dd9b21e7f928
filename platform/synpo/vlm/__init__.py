"""Video VLM families: what differs between them, behind one interface (:mod:`synpo.vlm.videos`)."""
