#!/usr/bin/env bash
# cmp.sh: the same listings from two servers (18080 new, 18081 base), pages followed
cd /work/bench10m
TOK=$(jq -r .owner_token keys.json); H="Authorization: Bearer $TOK"
qs=("user_id=user-000777" "user_id=user-012345" "user_id=user-049999&outcome=failure" "user_id=user-000001&range=24h" "user_id=user-000777&limit=200" "ip=145.253.232.192" "ip=123.147.20.203&range=7d" "token=jl_6c128fe41c38" "token=jl_89c6d8812d06&outcome=failure" "user_id=user-031337&type=token.issued")
same=0; diff=0
for q in "${qs[@]}"; do
  for port in 18080 18081; do
    cur=""; : > cmp/$port.txt
    for page in 1 2 3; do
      r=$(curl -s -H "$H" "http://127.0.0.1:$port/api/v1/tenants/default/events?limit=50&$q$cur")
      echo "$r" | jq -c '.events[] | [.seq, .ts]' >> cmp/$port.txt
      n=$(echo "$r" | jq -r '.next_cursor // empty'); [ -z "$n" ] && break; cur="&cursor=$n"
    done
  done
  if cmp -s cmp/18080.txt cmp/18081.txt; then same=$((same+1)); echo "same $(wc -l < cmp/18080.txt) $q"; else diff=$((diff+1)); echo "DIFF $q"; fi
done
for t in jl_6c128fe41c38 jl_2bacecded17f; do
  a=$(curl -s -H "$H" "http://127.0.0.1:18080/api/v1/tenants/default/tokens/$t"); b=$(curl -s -H "$H" "http://127.0.0.1:18081/api/v1/tenants/default/tokens/$t")
  [ "$a" = "$b" ] && echo "same token $t" || echo "DIFF token $t"
done
echo "same=$same diff=$diff"
