"""Readers and writers of audio (no training code): files through soundfile, your
folders of clips with their labels, and the eSpeak NG synthesiser."""
