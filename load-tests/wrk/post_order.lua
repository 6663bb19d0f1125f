-- wrk script: POST /api/orders with a valid JSON order.
-- Usage: wrk -t1 -c100 -d10s -s post_order.lua http://127.0.0.1:3000/api/orders
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"restaurant_id":1,"customer":"Ann","items":[{"name":"pho","qty":2}]}'
