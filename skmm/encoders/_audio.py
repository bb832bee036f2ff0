class AudioMFCC:  # placeholder replaced by the audio work
    pass
