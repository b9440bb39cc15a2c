#!/usr/bin/env bash
# Mail generator of the Compose `demo` profile: APPENDs a batch of sample mails to the demo mailbox
# over IMAP (curl's IMAP support; no SMTP server needed), so Postroom has something to work on with no
# outside account. Each batch shows one outcome of every kind:
#
#   1. a plain note without attachments              -> recorded, done
#   2. a PNG image and a CSV file                    -> both accepted and filed (the PNG gets a thumbnail)
#   3. a PNG sent as application/octet-stream        -> accepted, detected type image/png
#   4. a shell script named invoice.pdf              -> quarantined, not filed
#   5. a forwarded message (message/rfc822) with a CSV  -> filed as numbers.eml, its CSV extracted and filed
#
# Every mail has a fresh Message-ID, so each batch is new mail. Settings (environment):
#   MAILGEN_IMAP_URL       imap://dovecot:143     server (imap:// plain, imaps:// TLS)
#   MAILGEN_USER           demo
#   MAILGEN_PASSWORD       demo
#   MAILGEN_MAILBOX        INBOX
#   MAILGEN_BATCHES        1                      batches to append (0: forever)
#   MAILGEN_EVERY_SECONDS  30                     pause between batches
set -euo pipefail

url="${MAILGEN_IMAP_URL:-imap://dovecot:143}"
user="${MAILGEN_USER:-demo}"
password="${MAILGEN_PASSWORD:-demo}"
mailbox="${MAILGEN_MAILBOX:-INBOX}"
batches="${MAILGEN_BATCHES:-1}"
every="${MAILGEN_EVERY_SECONDS:-30}"

# A 48x32 checkerboard PNG (132 bytes).
png='iVBORw0KGgoAAAANSUhEUgAAADAAAAAgCAMAAABjCgsuAAAABlBMVEXmeCgoWsgq64WLAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAJElEQVQ4y2NghAIGKCDEZxjVQBMNo6E1ODSMhs5ofhjVAOcDADanAwGhSYuyAAAAAElFTkSuQmCC'
csv_b64="$(printf 'date,amount,currency\n2026-01-31,120.00,EUR\n2026-02-28,95.50,EUR\n' | base64 -w 76)"
script_b64="$(printf '#!/bin/sh\necho "this is not a PDF"\n' | base64 -w 76)"
png_b64="$(printf '%s' "$png" | base64 -d | base64 -w 76)"

# Appends one RFC 5322 message (stdin, LF line ends) to the mailbox. IMAP wants CRLF, and APPEND
# announces the size first, so curl reads the message from a file, not a pipe.
msg="$(mktemp)"
trap 'rm -f "$msg"' EXIT
append() {
  sed 's/$/\r/' >"$msg"
  curl --silent --show-error --fail --retry 5 --retry-connrefused --retry-delay 2 \
    --user "$user:$password" --upload-file "$msg" "$url/$mailbox"
}

# Common headers: from, subject, Message-ID suffix.
headers() {
  printf 'From: %s\nTo: Postroom demo <demo@postroom.demo>\nSubject: %s\nDate: %s\nMessage-ID: <%s.%s@mailgen.postroom.demo>\nMIME-Version: 1.0\n' \
    "$1" "$2" "$(date -R)" "$3" "$run"
}

batch() {
  run="$(date +%s%N)-$RANDOM"

  { headers 'Alice Example <alice@example.org>' 'Demo 1: a note without attachments' note
    printf 'Content-Type: text/plain; charset=utf-8\n\nHello from the Postroom demo. No attachments here.\n'
  } | append

  { headers 'Bob Example <bob@example.org>' 'Demo 2: an image and a spreadsheet' image-and-csv
    printf 'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\nThe chart and the numbers, as promised.\n'
    printf -- '--b1\nContent-Type: image/png; name="chart.png"\nContent-Disposition: attachment; filename="chart.png"\nContent-Transfer-Encoding: base64\n\n%s\n' "$png_b64"
    printf -- '--b1\nContent-Type: text/csv; name="payments.csv"\nContent-Disposition: attachment; filename="payments.csv"\nContent-Transfer-Encoding: base64\n\n%s\n--b1--\n' "$csv_b64"
  } | append

  { headers 'Carol Example <carol@example.org>' 'Demo 3: a picture with a generic type' generic-type
    printf 'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\nMy mail program sends everything as octet-stream.\n'
    printf -- '--b1\nContent-Type: application/octet-stream; name="scan"\nContent-Disposition: attachment; filename="scan"\nContent-Transfer-Encoding: base64\n\n%s\n--b1--\n' "$png_b64"
  } | append

  { headers 'Mallory <billing@invoices.example>' 'Demo 4: your invoice (a script in disguise)' disguised-script
    printf 'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\nPlease open the attached invoice.\n'
    printf -- '--b1\nContent-Type: application/pdf; name="invoice.pdf"\nContent-Disposition: attachment; filename="invoice.pdf"\nContent-Transfer-Encoding: base64\n\n%s\n--b1--\n' "$script_b64"
  } | append

  { headers 'Dave Example <dave@example.org>' 'Demo 5: Fwd: numbers' forwarded
    printf 'Content-Type: multipart/mixed; boundary="outer"\n\n--outer\nContent-Type: text/plain; charset=utf-8\n\nForwarding the numbers below.\n'
    printf -- '--outer\nContent-Type: message/rfc822\nContent-Disposition: inline\n\n'
    printf 'From: Erin <erin@example.org>\nSubject: numbers\nMessage-ID: <inner.%s@mailgen.postroom.demo>\nMIME-Version: 1.0\n' "$run"
    printf 'Content-Type: multipart/mixed; boundary="inner"\n\n--inner\nContent-Type: text/plain; charset=utf-8\n\nHere they are.\n'
    printf -- '--inner\nContent-Type: text/csv; name="forwarded.csv"\nContent-Disposition: attachment; filename="forwarded.csv"\nContent-Transfer-Encoding: base64\n\n%s\n--inner--\n--outer--\n' "$csv_b64"
  } | append

  echo "mailgen: appended 5 sample mails to $mailbox at $url ($(date -u +%H:%M:%S))"
}

n=0
while :; do
  batch
  n=$((n + 1))
  if [ "$batches" -ne 0 ] && [ "$n" -ge "$batches" ]; then break; fi
  sleep "$every"
done
