"""Package `answering`: from retrieved passages to an `Answer`.

It owns what the model is shown (`context`), the answer grammar (`grammar`), generation with each
sentence checked as it streams (`generation`, `stream`), the support and name checks (`support`)
and the extractive answerer (`extractive`). It may import every stage up to `retrieve`. Not named
`answer`: that is the front door's function, which a subpackage of the same name would replace.
"""
