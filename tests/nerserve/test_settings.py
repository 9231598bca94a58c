"""Handler settings: validated once at load, each error naming the field."""

import pytest

from nerserve.protocol import DEFAULT_MAX_TEXT_CHARS, Aggregation, OutputFormat
from nerserve.settings import ForwardMode, HandlerSettings, LinearKernels, Quantization


def test_settings_validate_and_name_the_field():
    assert HandlerSettings.from_mapping({"window_overlap": 32}).window_overlap == 32
    assert HandlerSettings.from_mapping(None) == HandlerSettings()
    with pytest.raises(ValueError, match="unknown keys"):
        HandlerSettings.from_mapping({"max_chars": 5})
    with pytest.raises(ValueError, match="window_overlap"):
        HandlerSettings.from_mapping({"max_length": 64, "window_overlap": 40})
    with pytest.raises(ValueError, match="tokens_per_forward"):
        HandlerSettings.from_mapping({"tokens_per_forward": 100})
    with pytest.raises(ValueError, match="max_text_chars must be an integer"):
        HandlerSettings.from_mapping({"max_text_chars": "10"})
    assert HandlerSettings.from_mapping({"torch_threads": 1}).torch_threads == 1
    with pytest.raises(ValueError, match="torch_threads must be >= 0"):
        HandlerSettings.from_mapping({"torch_threads": -1})
    with pytest.raises(ValueError, match="torch_threads must be an integer"):
        HandlerSettings.from_mapping({"torch_threads": True})
    with pytest.raises(ValueError, match="default_aggregation"):
        HandlerSettings.from_mapping({"default_aggregation": "none"})


def test_window_length_is_capped_by_the_model():
    capped = HandlerSettings(max_length=512, window_overlap=128).with_model_limit(64)
    assert (capped.max_length, capped.window_overlap) == (64, 31)


def test_defaults_come_from_the_protocol_and_options_parse_from_yaml_strings():
    assert HandlerSettings().max_text_chars == DEFAULT_MAX_TEXT_CHARS
    settings = HandlerSettings.from_mapping(
        {"default_aggregation": "MAX", "default_format": "segments", "quantization": "int8_dynamic"}
    )
    assert settings.default_aggregation is Aggregation.MAX
    assert settings.default_format is OutputFormat.SEGMENTS
    assert settings.quantization is Quantization.INT8_DYNAMIC
    with pytest.raises(ValueError, match="'quantization' must be one of"):
        HandlerSettings.from_mapping({"quantization": "int4"})


def test_a_window_within_the_model_limit_is_kept():
    settings = HandlerSettings(max_length=64, window_overlap=16)
    assert settings.with_model_limit(512) is settings


def test_request_limits_default_to_one_longest_text_and_follow_max_text_chars():
    defaults = HandlerSettings()
    assert defaults.max_request_chars == defaults.max_text_chars == DEFAULT_MAX_TEXT_CHARS
    assert defaults.max_texts_per_request >= 1
    assert HandlerSettings.from_mapping({"max_text_chars": 500}).max_request_chars == 500
    assert HandlerSettings.from_mapping({"max_text_chars": 500, "max_request_chars": 900}).max_request_chars == 900
    with pytest.raises(ValueError, match=r"max_request_chars \(400\) must be >= handler.max_text_chars \(500\)"):
        HandlerSettings.from_mapping({"max_text_chars": 500, "max_request_chars": 400})
    with pytest.raises(ValueError, match="max_texts_per_request must be >= 1"):
        HandlerSettings.from_mapping({"max_texts_per_request": 0})
    with pytest.raises(ValueError, match="max_texts_per_request must be an integer"):
        HandlerSettings.from_mapping({"max_texts_per_request": 2.5})


def test_word_piece_limits_validate_and_the_request_limit_follows_the_text_limit():
    assert HandlerSettings.from_mapping({"max_text_pieces": 100}).max_request_pieces == 100
    assert HandlerSettings().max_request_pieces == HandlerSettings().max_text_pieces
    with pytest.raises(ValueError, match="max_request_pieces"):
        HandlerSettings.from_mapping({"max_text_pieces": 100, "max_request_pieces": 99})
    with pytest.raises(ValueError, match="max_text_pieces must be >= 1"):
        HandlerSettings(max_text_pieces=0)
    with pytest.raises(ValueError, match="max_request_bytes"):
        HandlerSettings.from_mapping({"max_request_bytes": "1MB"})


def test_the_forward_mode_parses_from_yaml_and_defaults_to_packed():
    assert HandlerSettings().forward is ForwardMode.PACKED
    assert HandlerSettings.from_mapping({"forward": "Padded"}).forward is ForwardMode.PADDED
    with pytest.raises(ValueError, match=r"'forward' must be one of \['packed', 'padded'\]"):
        HandlerSettings.from_mapping({"forward": "unpadded"})


def test_the_linear_kernels_parse_from_yaml_and_default_to_onednn():
    assert HandlerSettings().linear_kernels is LinearKernels.ONEDNN
    assert HandlerSettings.from_mapping({"linear_kernels": "Torch"}).linear_kernels is LinearKernels.TORCH
    with pytest.raises(ValueError, match=r"'linear_kernels' must be one of \['onednn', 'torch'\]"):
        HandlerSettings.from_mapping({"linear_kernels": "mkl"})


def test_the_shipped_model_config_loads_with_the_default_forward_mode():
    import yaml

    from tests.support.paths import HANDLER_DIR

    config = yaml.safe_load((HANDLER_DIR / "model_config.yaml").read_text(encoding="utf-8"))
    assert config["handler"]["forward"] == HandlerSettings().forward.value
    assert HandlerSettings.from_mapping(config["handler"]).forward is ForwardMode.PACKED
