"""The captioning API's request side: taking in the videos requests name (uploads, URLs) safely."""
