#!/usr/bin/env bash
# Installs afpacket and the real peers its tests and demo use (as root, on Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! command -v trafgen >/dev/null || ! command -v tshark >/dev/null || ! command -v tcpreplay >/dev/null \
   || ! command -v tcpdump >/dev/null || ! command -v gcc >/dev/null || ! command -v ip >/dev/null \
   || ! command -v dnsmasq >/dev/null || ! command -v dig >/dev/null || ! command -v dhclient >/dev/null \
   || ! command -v ntpdig >/dev/null || ! command -v lldpd >/dev/null || ! command -v curl >/dev/null \
   || ! command -v openssl >/dev/null || ! command -v ssh >/dev/null || ! command -v java >/dev/null \
   || [ ! -e /usr/include/linux/if_packet.h ] || ! ldconfig -p | grep -q 'libpcap\.so' \
   || [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    tcpdump netsniff-ng tcpreplay tshark iproute2 gcc libc6-dev linux-libc-dev libpcap-dev util-linux procps \
    python3-dev \
    dnsmasq-base bind9-dnsutils isc-dhcp-client ntpsec-ntpdig lldpd curl openssl openssh-client \
    default-jre-headless >/dev/null
fi
pip_install() { python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@"; }
# The C ring kernels are built by pip from setup.py (gcc + the Python headers above); without them the
# install still succeeds with the pure-Python core. Set AFPACKET_REQUIRE_EXTENSIONS=1 to make that an error.
# Debian's own python3 marks itself externally managed; a pyenv/venv python does not.
pip_install -e '.[test]' 2>/dev/null || pip_install --break-system-packages -e '.[test]'
