"""`asnet predict`: a trained model (a run's model.pt, or one of Hara et al.'s published files)
applied to video files: top-k classes per video, SPA's box per clip, an annotated MP4 and a
contact sheet. Decoding is the extraction's (asnet.data.frames.decode_files) and scoring is
evaluation's (asnet.train.evaluate.score_video), so a test video's scores equal scores.npz's."""
