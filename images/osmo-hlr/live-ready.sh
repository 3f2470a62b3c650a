#!/bin/sh
# Exec probe of the test NF, as the OAI SMF chart has one: is the HLR's database there?
test -s /var/lib/osmocom/hlr.db
