#!/bin/bash
# Stand-in for oVirt's /usr/share/ovirt-engine/bin/pki-enroll-request.sh (tests only).
#
# Install (copy) it at <root>/usr/share/ovirt-engine/bin/pki-enroll-request.sh; it signs
# <root>/etc/pki/ovirt-engine/requests/<name>.req into certs/<name>.cer with the real openssl,
# the way oVirt's script does (ovirt-engine packaging/bin/pki-enroll-request.sh): `openssl ca`
# with oVirt's policy_match and the [v3_ca_san] section of packaging/pki/cert.template.in
# (less authorityInfoAccess, which needs the engine's URL), notBefore one day back, under an
# exclusive flock on ca.pem waiting at most --timeout seconds.
#
# Options, as oVirt's: --name= --subject= --days= --san= --timeout=; anything else exits 1.
#
# Test hooks, files beside this script:
#   $0.calls  every call appends one line: its arguments joined by TAB
#   $0.fail   if present: its content goes to stderr and the script exits 1, signing nothing
#   $0.hang   while present: the script waits (for timeout tests)
#   $0.hold   if present: the script signs, lets go of the CA lock, creates $0.held and waits
#             until $0.hold is removed: the certificate is issued but its caller has not
#             heard back (to kill the engine at exactly that point)
set -eu

die() { echo "$1" >&2; exit 1; }

(IFS=$'\t'; printf '%s\n' "$*") >> "$0.calls"
[ -e "$0.fail" ] && { cat "$0.fail" >&2; exit 1; }
while [ -e "$0.hang" ]; do sleep 0.2; done

# Not readlink -f: a symlinked copy must find the PKI of the root it is installed in.
# <root>/usr/share/ovirt-engine/bin -> four levels up is <root>.
ROOT="$(cd "$(dirname "$0")/../../../.." && pwd)"
PKIDIR="${ROOT}/etc/pki/ovirt-engine"
# Its own path, for the hooks used after the cd below.
ME="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

NAME="" SUBJECT="" DAYS="398" SAN="" TIMEOUT="20"
for x in "$@"; do
	v="${x#*=}"
	case "${x}" in
		--name=*) NAME="${v}" ;;
		--subject=*) SUBJECT="${v}" ;;
		--days=*) DAYS="${v}" ;;
		--san=*) SAN="${v}" ;;
		--timeout=*) TIMEOUT="${v}" ;;
		*) die "Usage: $0 --name=prefix [--subject=subject] [--days=n] [--san=san] [--timeout=n]" ;;
	esac
done
[ -n "${NAME}" ] || die "Please specify name"
[ -n "${SAN}" ] || die "This stand-in only implements --san (oVirt's v3_ca_san section)"

cd "${PKIDIR}"
exec 9< ca.pem
flock -e -w "${TIMEOUT}" 9 || die "Timeout waiting for lock. Giving up"

[ -e database.txt ] || touch database.txt
[ -e serial.txt ] || echo 1000 > serial.txt
conf="$(mktemp)"
trap 'rm -f "${conf}"' EXIT
cat > "${conf}" << '__EOF__'
[ca]
default_ca = CA_default

[CA_default]
database = database.txt
new_certs_dir = certs
serial = serial.txt
default_md = sha256
unique_subject = no
policy = policy_match

[policy_match]
countryName = optional
stateOrProvinceName = optional
organizationName = optional
organizationalUnitName = optional
commonName = optional
emailAddress = optional

[v3_ca_san]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer:always
basicConstraints = CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = critical,serverAuth,clientAuth
subjectAltName = ${ENV::OVIRT_SAN}
__EOF__

OVIRT_SAN="${SAN}" openssl ca \
	-batch \
	-config "${conf}" \
	-cert ca.pem \
	-keyfile private/ca.pem \
	-days "${DAYS}" \
	-in "requests/${NAME}.req" \
	-out "certs/${NAME}.cer" \
	-startdate "$(date --utc --date "now -1 days" +"%y%m%d%H%M%SZ")" \
	${SUBJECT:+-subj "${SUBJECT}"} \
	-utf8 \
	-extensions v3_ca_san \
	|| die "Cannot sign certificate"
chmod a+r "certs/${NAME}.cer"
if [ -e "${ME}.hold" ]; then
	exec 9<&-
	: > "${ME}.held"
	while [ -e "${ME}.hold" ]; do sleep 0.1; done
fi
