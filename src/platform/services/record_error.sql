-- An action that could not be carried out (a refused signal, say): say why, change nothing else.
update services set last_error = $3 where name = $1 and host = $2
