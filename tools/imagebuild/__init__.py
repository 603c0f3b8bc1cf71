"""The daemonless, reproducible image build (`make image`, `make image-pin`, `make image-lock`)."""
