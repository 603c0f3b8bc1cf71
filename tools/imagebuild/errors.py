"""The one exception the image build raises: its message is the one line the user sees."""


class BuildError(Exception):
    pass
