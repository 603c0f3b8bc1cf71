"""The add-ons' checks' one error: a sentence that says what is wrong and what to do."""


class AddonError(Exception):
    pass
