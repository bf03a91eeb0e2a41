// The seed's kafkajs producer, unchanged but for the broker address, which
// the Go test passes in BROKERS. It sends ORD-001 to order.created.
import { Kafka } from 'kafkajs'

const kafka = new Kafka({ clientId: 'orders', brokers: [process.env.BROKERS ?? 'localhost:9092'] })
const producer = kafka.producer()

await producer.connect()
await producer.send({
  topic: 'order.created',
  messages: [
    { key: 'ORD-001', value: JSON.stringify({ orderId: 'ORD-001', userId: 'u_1' }) },
  ],
})
await producer.disconnect()
