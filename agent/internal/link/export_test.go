package link

// SetRand fixes the draws of c's backoff, [0,1); call it before Run.
func SetRand(c *Client, f func() float64) { c.rand = f }
